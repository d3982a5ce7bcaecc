"""One way to refuse bad input: every check raises ``ValueError`` naming the argument and what it accepts.

The message always reads ``"<name>=<value> is invalid: <name> accepts <what>"``, so a reader who passes a
wrong value learns which argument was wrong and how to fix it without opening the source. Every module of the
package validates through these helpers rather than its own copy of the format.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd


def require(name: str, value: Any, ok: bool, accepts: str) -> None:
    """Raise ``ValueError`` unless ``ok``: ``name`` was given ``value``, and accepts ``accepts``."""
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: {name} accepts {accepts}")


def is_integer(value: Any) -> bool:
    """A Python or numpy integer (``True`` and ``1.0`` are not)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite real number (``True`` is not one)."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def require_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> None:
    """An integer from ``lo`` to ``hi`` (either bound may be open)."""
    in_range = is_integer(value) and (lo is None or value >= lo) and (hi is None or value <= hi)
    require(name, value, in_range, _range_text("an integer", lo, hi, "{:,}"))


def require_float(name: str, value: Any, lo: float | None = None, hi: float | None = None,
                  open_lo: bool = False) -> None:
    """A finite number from ``lo`` to ``hi``; ``open_lo`` excludes ``lo`` itself (``> lo`` rather than ``>=``)."""
    ok = is_number(value) and (hi is None or value <= hi)
    if lo is not None:
        ok = ok and (value > lo if open_lo else value >= lo)
    if open_lo and hi is None:
        accepts = f"a number > {lo}"
    elif open_lo:
        accepts = f"a number in ({lo}, {hi}]"
    else:
        accepts = _range_text("a number", lo, hi, "{}")
    require(name, value, ok, accepts)


def _range_text(kind: str, lo: float | None, hi: float | None, fmt: str) -> str:
    if lo is not None and hi is not None:
        return f"{kind} from {fmt.format(lo)} to {fmt.format(hi)}"
    if lo is not None:
        return f"{kind} >= {fmt.format(lo)}"
    if hi is not None:
        return f"{kind} <= {fmt.format(hi)}"
    return kind


def require_columns(name: str, frame: Any, columns: Iterable[str]) -> None:
    """A DataFrame holding every one of ``columns``; the error lists the missing ones."""
    needed = list(columns)
    if not isinstance(frame, pd.DataFrame):
        require(name, type(frame).__name__, False, f"a DataFrame with columns {needed}")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}: {name} accepts a DataFrame with columns {needed}")


def require_ids(name: str, values: Any, hi: int, kind: str) -> None:
    """Integer ids from 0 to ``hi - 1``, ``name`` being the id of ``kind`` (``"a person"``, ``"a post"``)."""
    values = np.asarray(values)
    integer = np.issubdtype(values.dtype, np.integer)
    valid = integer and bool(np.all((values >= 0) & (values < hi)))
    bad = np.ravel(values)[:3].tolist() if not integer else np.ravel(values[(values < 0) | (values >= hi)])[:3].tolist()
    require(name, bad, valid, f"integer ids from 0 to {hi - 1} ({name} of {kind})")


def require_known(name: str, values: Iterable[Any], known: Collection[Any] | pd.Index, what: str) -> None:
    """Every value is one of ``known``; the error shows up to three unknown ones. ``what`` says what the known
    values are (``"the id of a post in posts"``)."""
    index = known if isinstance(known, pd.Index) else pd.Index(list(known))
    values = pd.Index(np.ravel(np.asarray(list(values) if not hasattr(values, "__array__") else values)))
    unknown = values[~values.isin(index)].unique()[:3].tolist()
    require(name, unknown, not unknown, what)
