"""The one call at the top of every chapter: same numbers on every machine, same look on every page."""

from __future__ import annotations

import os
import platform
import random

import numpy as np

from newsfeed.validation import require, require_float, require_int

#: The instruction set the math libraries compute with, pinned on x86-64 processors: AVX-512 and AVX2 kernels
#: add in different orders, so without this a network trained on one processor ends a few ten-thousandths away
#: from the same network trained on another, and early stopping can pick another epoch (seen here: 3 against 7).
#: PyTorch's own kernels, Intel MKL (conditional numerical reproducibility) and oneDNN each read one variable,
#: before their first use.
CPU_KERNELS: dict[str, str] = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_cpu_kernels() -> None:
    """Set ``CPU_KERNELS`` (where not set already) on x86-64; elsewhere the libraries keep their own choice."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        for name, value in CPU_KERNELS.items():
            os.environ.setdefault(name, value)


#: Characters of code the rendered book shows on one line (see _static/book.css and tests/test_chapters.py).
PAGE_WIDTH = 100


def show_source(obj: object) -> None:
    """Print the source of a package function or class, as the chapter that teaches it shows it.

    The chapter's stored output is then the package's code itself: strict nbval fails the chapter when the
    source changes and the chapter was not re-executed, so the page cannot drift from the package. Lines longer
    than the page are refused rather than cut, since a reader would have to scroll sideways to read them.
    """
    import inspect

    source = inspect.getsource(obj)  # type: ignore[arg-type]
    wide = [line for line in source.splitlines() if len(line) > PAGE_WIDTH]
    require("obj", getattr(obj, "__qualname__", obj), not wide,
            f"a function or class whose lines fit the page ({PAGE_WIDTH} characters); too wide: {wide[:1]}")
    print(f"# {inspect.getsourcefile(obj).split('newsfeed/', 1)[-1]}")  # type: ignore[arg-type, union-attr]
    print(source, end="")


def setup(seed: int = 0, threads: int = 1) -> np.random.Generator:
    """Seed Python, numpy and torch, pin math libraries to ``threads`` threads, and set display defaults.

    Thread counts and instruction sets change floating-point sums, so a chapter's printed numbers reproduce only
    with the same ones: one thread is the default everywhere (CI, the book's stored outputs, a learner's
    laptop), and ``pin_cpu_kernels`` fixes the instruction set before torch is first imported.
    Returns a numpy ``Generator`` seeded with ``seed`` for the chapter's own randomness.
    """
    require_int("threads", threads, lo=1)
    pin_cpu_kernels()
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 -- also seed legacy np.random calls a reader may add
    try:
        import torch
    except ImportError:  # chapters before the models do not need torch
        pass
    else:
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
    import matplotlib as mpl
    import pandas as pd

    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 110)
    pd.set_option("display.max_columns", 20)
    mpl.rcParams.update({"figure.figsize": (7.5, 3.6), "figure.dpi": 110, "axes.spines.top": False,
                         "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
                         "svg.hashsalt": "feed-ranking-executed"})
    return np.random.default_rng(seed)


def format_p_value(p: float) -> str:
    """A p-value as a reader compares it with a threshold: three decimals, or "< 0.001" below that.

    One format for every table in the book, so that "0.000" in one chapter and "0.0" in another never
    both mean "very small".
    """
    require_float("p", p, 0, 1)
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
