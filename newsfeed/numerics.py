"""Stored outputs on another processor: which machine computed a chapter's outputs, and when two printed numbers
agree within the noise that another processor's arithmetic causes.

A chapter's stored outputs are its test (``make test`` re-runs it and compares). On the kind of machine that stored
them the comparison is exact. Elsewhere (another vendor, AVX-512, Apple silicon) sums are added in another order:
the book trains in float64 so that this noise stays far below the printed digits, and the comparison accepts a
number that moved by at most the chapter's stated tolerance while everything else (every word, every number's
place, every count of rows) must be identical. ``python -m newsfeed.numerics stamp chapters/*.ipynb`` records
the machine in each notebook after it is executed (``make execute`` does).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from newsfeed.notebook import pin_cpu_kernels
from newsfeed.validation import require, require_float

#: Environment variables that change which instruction set the math libraries compute with.
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "NPY_DISABLE_CPU_FEATURES",
                    "OPENBLAS_CORETYPE")
#: Where a notebook keeps the fingerprint of the machine that computed its outputs, and its tolerance.
METADATA_KEY = "newsfeed"


def _cpu_name() -> str:
    """The processor's vendor and model as the operating system names it (Linux, macOS), else Python's guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in info)}
        return " ".join(fields.get(key, "") for key in ("vendor_id", "model name")).strip() or platform.processor()
    except OSError:
        pass
    if platform.system() == "Darwin":
        import subprocess

        result = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                check=False)
        if result.stdout.strip():
            return result.stdout.strip()
    return platform.processor() or "unknown"


@cache
def fingerprint() -> str:
    """One line naming what decides this machine's floating-point results: the processor, the instruction sets
    numpy and PyTorch dispatch to, and the variables that pin them (in this process's environment, which a
    notebook kernel started from it inherits). Two machines with the same line compute the same bits."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    numpy_isa = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)] or ["baseline"]
    parts = [platform.system(), platform.machine(), _cpu_name(), f"numpy {'+'.join(numpy_isa)}"]
    try:
        import torch
    except ImportError:
        pass
    else:
        parts.append(f"torch {torch.backends.cpu.get_cpu_capability()}")
    parts += [f"{name}={os.environ[name]}" for name in KERNEL_VARIABLES if os.environ.get(name)]
    return " | ".join(parts)


@dataclass(frozen=True)
class Tolerance:
    """How far a printed number may move on another processor and still match its stored value.

    A number matches when it is within ``rel`` of the stored one (relative), or, for a number printed with
    decimals or as a percentage, within ``units`` of its last printed digit (0.9352 against 0.9351, 63% against
    64%). Whole numbers without a percent sign get only the relative slack: a count or an epoch number that moves
    by one is a real change."""

    rel: float = 0.002
    units: int = 1

    def __post_init__(self) -> None:
        require_float("rel", self.rel, 0.0, 0.1)
        require("units", self.units, isinstance(self.units, int) and 0 <= self.units <= 10,
                "an integer from 0 to 10")


#: A number as printed: optional sign, digits with optional thousands separators, decimals, exponent; a percent
#: sign after it is part of how it was printed.
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?")


def _unit(token: str) -> float | None:
    """The value of one step in the token's last printed digit, or None for a whole number (no slack)."""
    body = token.rstrip("%")
    mantissa, _, exponent = body.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    if "." not in mantissa and not token.endswith("%"):
        return None
    return 10.0 ** (int(exponent or 0) - decimals)


def _value(token: str) -> float:
    return float(token.rstrip("%").replace(",", ""))


def _skeleton(text: str) -> str:
    """The text with every number replaced by ``#`` and every run of spaces by one: a table pads its columns to
    the widest number, so a number printed one digit longer moves the spaces around it, not the text."""
    return re.sub(r"[ \t]+", " ", NUMBER.sub("#", text))


def differences(stored: str, fresh: str, tolerance: Tolerance) -> list[str]:
    """What keeps ``fresh`` from printing what ``stored`` does up to numbers within ``tolerance``: each number
    that moved further (stored, fresh and the slack it had), or that the text between numbers differs. Empty when
    they match."""
    if stored == fresh:
        return []
    if _skeleton(stored) != _skeleton(fresh):
        return ["the text around the numbers differs (a word, a row or a count of numbers)"]
    moved = []
    for old, new in zip(NUMBER.findall(stored), NUMBER.findall(fresh), strict=True):
        if old == new:
            continue
        a, b = _value(old), _value(new)
        slack = tolerance.rel * max(abs(a), abs(b))
        units = [u for u in (_unit(old), _unit(new)) if u is not None]
        if len(units) == 2:
            slack = max(slack, tolerance.units * max(units) * (1 + 1e-9))
        if abs(a - b) > slack:
            moved.append(f"{old} became {new} (tolerance {slack:.3g})")
    return moved


def numbers_match(stored: str, fresh: str, tolerance: Tolerance) -> bool:
    """Whether ``fresh`` prints what ``stored`` does, up to numbers within ``tolerance``: the text between numbers
    must be identical, and so must the count of numbers."""
    return not differences(stored, fresh, tolerance)


def tolerance_of(notebook: Any, cell: Any | None = None) -> Tolerance:
    """The tolerance a notebook states (``metadata.newsfeed.tolerance``), a cell's own if it states one, else the
    default. A stated tolerance carries its reason under ``why``, shown to whoever reads the notebook's JSON."""
    for source in (cell, notebook):
        stated = (getattr(source, "metadata", None) or {}).get(METADATA_KEY, {}).get("tolerance")
        if stated:
            return Tolerance(**{key: value for key, value in stated.items() if key != "why"})
    return Tolerance()


def stored_on(notebook: Any) -> str | None:
    """The fingerprint of the machine that computed a notebook's stored outputs, if it was stamped."""
    return (notebook.metadata or {}).get(METADATA_KEY, {}).get("computed_on")


def align_within_tolerance(fresh: list[dict], stored: list[dict], tolerance: Tolerance,
                           sanitize: Any = lambda s: s) -> tuple[list[dict], int]:
    """``fresh`` outputs with every text that matches its stored counterpart within ``tolerance`` replaced by the
    stored text, and how many were replaced. Outputs pair by position and kind; anything that does not pair
    (another count of outputs, another type) is left as it is, for the exact comparison to report."""
    if len(fresh) != len(stored):
        return fresh, 0
    aligned, replaced = [], 0
    for new, old in zip(fresh, stored, strict=True):
        new = dict(new)
        for key in set(new) & set(old):
            if key == "data":
                data = dict(new["data"])
                for mime in set(data) & set(old["data"]):
                    if _text_matches(old["data"][mime], data[mime], tolerance, sanitize):
                        replaced += old["data"][mime] != data[mime]
                        data[mime] = old["data"][mime]
                new["data"] = data
            elif key not in ("output_type", "metadata") and _text_matches(old[key], new[key], tolerance, sanitize):
                replaced += old[key] != new[key]
                new[key] = old[key]
        aligned.append(new)
    return aligned, replaced


def explain(fresh: list[dict], stored: list[dict], tolerance: Tolerance, sanitize: Any = lambda s: s) -> list[str]:
    """For a failed tolerant comparison: the numbers that moved further than ``tolerance``, output by output."""
    lines = []
    for new, old in zip(fresh, stored, strict=False):
        plain = [output.get("data", {}).get("text/plain") for output in (old, new)]
        for before, after in ((old.get("text"), new.get("text")), plain):
            if isinstance(before, str) and isinstance(after, str):
                lines += differences(sanitize(before), sanitize(after), tolerance)[:10]
    return lines


def _text_matches(stored: Any, fresh: Any, tolerance: Tolerance, sanitize: Any) -> bool:
    if not (isinstance(stored, str) and isinstance(fresh, str)):
        return False
    return numbers_match(sanitize(stored), sanitize(fresh), tolerance)


def stamp(paths: Sequence[str]) -> None:
    """Record this machine's fingerprint in each notebook, as the machine that computed its stored outputs."""
    import nbformat

    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        notebook.metadata.setdefault(METADATA_KEY, {})["computed_on"] = fingerprint()
        nbformat.write(notebook, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stamp executed notebooks with the machine that computed them.")
    parser.add_argument("command", choices=["stamp", "show"])
    parser.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)
    pin_cpu_kernels()  # as every chapter's setup() does, before anything computes
    if args.command == "show":
        print(fingerprint())
    else:
        stamp(args.notebooks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
