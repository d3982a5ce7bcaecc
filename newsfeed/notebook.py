"""The one call at the top of every chapter: same numbers on every machine, same look on every page."""

from __future__ import annotations

import os
import random

import numpy as np


def setup(seed: int = 0, threads: int = 1) -> np.random.Generator:
    """Seed Python, numpy and torch, pin math libraries to ``threads`` threads, and set display defaults.

    Thread counts change floating-point sums, so a chapter's printed numbers reproduce only with the same
    count; one thread is the default everywhere (CI, the book's stored outputs, a learner's laptop).
    Returns a numpy ``Generator`` seeded with ``seed`` for the chapter's own randomness.
    """
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r} is invalid: threads accepts an integer >= 1")
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
