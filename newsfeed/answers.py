"""What leaves a student's kernel: each answer, and the setup cell's parameters, printed as plain data.

The autograder (``newsfeed.grading``) adds a cell after each answer that calls ``print_answers``; this module is
all that cell imports, so each kernel the grader starts is ready in a second rather than importing the grader.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

ANSWERS_MARK = "ANSWERS "
PARAMETERS_MARK = "PARAMETERS "


def _as_table(value: Any) -> pd.DataFrame | None:
    """Numbers, Series, dicts and DataFrames as one DataFrame, so every answer compares the same way."""
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, pd.Series):
        return value.to_frame("value")
    if isinstance(value, dict):
        return _as_table(pd.Series(value))
    if isinstance(value, int | float | np.number | np.ndarray | list | tuple):
        try:
            return pd.DataFrame({"value": np.ravel(np.asarray(value, dtype=float))})
        except (TypeError, ValueError):
            return None
    return None


def _plain(value: Any) -> Any:
    """One cell of an answer as JSON: booleans and numbers as themselves (NaN included), anything else as text."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return None if value is None else str(value)


def answer_data(value: Any) -> dict[str, Any]:
    """An answer as plain data, the only form in which it leaves a kernel: a table of numbers and labels (row
    and column labels as text), or the reason it is not one."""
    if value is None:
        return {"problem": "not set (still None)"}
    table = _as_table(value)
    if table is None:
        return {"problem": f"expected numbers, a Series or a DataFrame, got {type(value).__name__}"}
    return {"index": [str(label) for label in table.index], "columns": [str(label) for label in table.columns],
            "values": [[_plain(cell) for cell in row] for row in table.to_numpy(object)]}


def answer_table(data: Any) -> pd.DataFrame | str:
    """An answer's data back as a DataFrame, or the reason there is none (data from a student's kernel is
    checked, not trusted)."""
    if not isinstance(data, dict):
        return "not captured: the notebook stopped before this answer"
    if "problem" in data:
        return str(data["problem"])
    try:
        return pd.DataFrame(data["values"], index=data["index"], columns=data["columns"]).infer_objects()
    except (KeyError, TypeError, ValueError) as error:
        return f"an answer that could not be read ({type(error).__name__})"


def print_answers(label: str, names: list[str], namespace: dict[str, Any]) -> None:
    """Print an exercise's answers as one JSON line: run inside the kernel, right after the answer's cells."""
    answers = {name: answer_data(namespace.get(name)) for name in names}
    print(ANSWERS_MARK + json.dumps({"exercise": label, "answers": answers}))


def print_parameters(names: list[str], namespace: dict[str, Any]) -> None:
    """Print the setup cell's parameters (text, whole numbers, decimals, booleans) as one JSON line."""
    values = {name: namespace.get(name) for name in names}
    print(PARAMETERS_MARK + json.dumps({name: value for name, value in values.items()
                                        if isinstance(value, bool | int | float | str)}))
