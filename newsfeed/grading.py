"""The autograder for the coding exercises: each submission graded in kernels it cannot reach out of.

A submission runs in its own kernel, in a scratch folder with its own copy of the package and the data, and
takes out only data: the setup cell's parameters (``SEED``) and, after each answer, the answer as a table of
numbers. The teacher's chapter then runs in another kernel with those parameters written into its setup cell, so
the expected answers come from the student's own world (nothing is typed in), and the grader's own process
compares the two within each answer's tolerance. A submission can change anything in its kernel and its scratch
folder; it cannot reach the reference run, the comparison or the score. A kernel is not a sandbox, though: code
that searches the disk could still find the teacher's chapters, so grade untrusted submissions in a container.

``python -m newsfeed.grading SUBMISSION...`` (``make grade``) prints one JSON line per submission.

No grading framework is needed: a notebook client (already installed with Jupyter) and pandas comparisons
grade as well as nbgrader would here, without its ~300 MB and the widget packages that change how progress
bars print (which would break the book's strict output comparison).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pandas as pd

from newsfeed.answers import ANSWERS_MARK, PARAMETERS_MARK, answer_table
from newsfeed.teaching import ROOT, graded_exercises, solution_code_cells
from newsfeed.validation import require


def compare(submitted: pd.DataFrame | str, expected: pd.DataFrame, spec: dict[str, Any]) -> str | None:
    """Why ``submitted`` (an answer table, or the reason there is none) is not ``expected`` within
    ``spec['rtol']`` (None when it is).

    Every row and column of the expected answer must be in the submission (extra ones are ignored);
    ``spec['columns']``, if given, limits the comparison to those columns.
    """
    if isinstance(submitted, str):
        return submitted
    got, want = submitted, expected
    columns = spec.get("columns", list(want.columns))
    missing = [c for c in columns if c not in got.columns] + [str(r) for r in want.index if r not in got.index]
    if missing:
        return f"missing rows or columns: {missing[:5]}"
    got, want = got.loc[want.index, columns], want[columns]
    numeric = want.select_dtypes("number").columns
    try:
        close = np.isclose(got[numeric].to_numpy(float), want[numeric].to_numpy(float),
                           rtol=spec["rtol"], atol=spec.get("atol", 1e-9), equal_nan=True)
    except (TypeError, ValueError):
        return "values that are not numbers where numbers are expected"
    if not close.all():
        relative = np.abs(got[numeric].to_numpy(float) - want[numeric].to_numpy(float)) / np.maximum(
            np.abs(want[numeric].to_numpy(float)), 1e-12)
        return (f"{(~close).sum()} of {close.size} values differ by more than the tolerance "
                f"({spec['rtol']:g}, relative); the largest relative difference is {np.nanmax(relative):.3g}")
    others = want.columns.difference(numeric)
    if not got[others].astype(str).equals(want[others].astype(str)):
        return "non-numeric values differ"
    return None


def score(submitted: dict[str, Any], expected: dict[str, Any] | None, exercise: dict[str, Any]) -> dict:
    """The points one exercise earns from its answers' data: all its answers right, or none of its points."""
    expected_tables = {name: answer_table((expected or {}).get(name)) for name in exercise["answers"]}
    if any(isinstance(table, str) for table in expected_tables.values()):
        # The reference solution did not run with this submission's parameters (a SEED it cannot use, say).
        return {"points": 0, "max": exercise["points"],
                "problems": {"": "the reference solution could not run with this notebook's parameters"}}
    problems = {name: compare(answer_table(submitted.get(name)), expected_tables[name], spec)
                for name, spec in exercise["answers"].items()}
    problems = {name: why for name, why in problems.items() if why}
    return {"points": 0 if problems else exercise["points"], "max": exercise["points"], "problems": problems}


def setup_parameters(notebook: nbformat.NotebookNode) -> tuple[int | None, list[str]]:
    """The index of the chapter's setup cell (the first code cell that sets ``SEED``) and the parameters it
    sets: upper-case names assigned a literal (``SEED = 0``, ``SCALE = "default"``)."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and re.search(r"^SEED\s*=", cell.source, re.M):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                return index, []
            return index, [node.targets[0].id for node in tree.body
                           if isinstance(node, ast.Assign) and len(node.targets) == 1
                           and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper()
                           and isinstance(node.value, ast.Constant)]
    return None, []


def _capture(code: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(f"from newsfeed import answers as _answers\n{code}")
    cell.metadata["grading"] = {"capture": True}
    return cell


def _answer_capture(label: str, exercise: dict[str, Any]) -> nbformat.NotebookNode:
    """The cell that prints an exercise's answers as data, right after the cells that compute them."""
    return _capture(f"_answers.print_answers({label!r}, {list(exercise['answers'])!r}, globals())")


def answers_notebook(submission: nbformat.NotebookNode, teacher: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The submission with a cell after its setup cell that prints its parameters, and a cell after each
    answer (the starter cell and the code cells right below it) that prints the answer as data."""
    graded = graded_exercises(teacher)
    setup_index, _ = setup_parameters(submission)
    _, teacher_names = setup_parameters(teacher)
    cells, pending = [], None
    for index, cell in enumerate(submission.cells):
        label = cell.metadata.get("grading", {}).get("exercise") if cell.cell_type == "code" else None
        if pending and (cell.cell_type == "markdown" or label):
            cells.append(_answer_capture(pending, graded[pending]))
            pending = None
        cells.append(copy.deepcopy(cell))
        if index == setup_index:
            cells.append(_capture(f"_answers.print_parameters({teacher_names!r}, globals())"))
        if label in graded:
            pending = label
    if pending:
        cells.append(_answer_capture(pending, graded[pending]))
    answers = copy.deepcopy(submission)
    answers.cells = cells
    return answers


def reference_notebook(teacher: nbformat.NotebookNode, parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """The teacher's chapter, up to its last graded solution, with the student's parameters written into its
    setup cell (as literals: nothing a student typed runs here) and a cell printing each reference answer."""
    graded = graded_exercises(teacher)
    setup_index, names = setup_parameters(teacher)
    position = {id(cell): index for index, cell in enumerate(teacher.cells)}
    last = {label: position[id(cell)] for label, cell in solution_code_cells(teacher) if label in graded}
    cells = []
    for index, cell in enumerate(teacher.cells[:max(last.values(), default=-1) + 1]):
        cell = copy.deepcopy(cell)
        if index == setup_index:
            cell.source = _with_parameters(cell.source, {name: parameters[name] for name in names
                                                         if name in parameters})
        cells.append(cell)
        cells += [_answer_capture(label, graded[label]) for label, at in last.items() if at == index]
    reference = copy.deepcopy(teacher)
    reference.cells = cells
    return reference


def _with_parameters(source: str, values: dict[str, Any]) -> str:
    """``source`` with each ``NAME = literal`` line of ``values`` set to that value (finite numbers, text and
    booleans only, written with ``repr``: a value can never become code)."""
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in values:
            value = values[node.targets[0].id]
            if isinstance(value, bool | int | str) or (isinstance(value, float) and np.isfinite(value)):
                lines[node.lineno - 1:node.end_lineno] = [f"{node.targets[0].id} = {value!r}"] + [""] * (
                    node.end_lineno - node.lineno)
    return "\n".join(lines)


def _printed(cell: nbformat.NotebookNode, mark: str) -> Any:
    """The JSON a capture cell printed after ``mark`` (its last such line), or None."""
    text = "".join(output.get("text", "") for output in cell.get("outputs", [])
                   if output.get("output_type") == "stream" and output.get("name") == "stdout")
    lines = [line[len(mark):] for line in text.splitlines() if line.startswith(mark)]
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None


def _captured(notebook: nbformat.NotebookNode) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The parameters and the answers (by exercise) that a run's capture cells printed."""
    parameters: dict[str, Any] = {}
    answers: dict[str, dict[str, Any]] = {}
    for cell in notebook.cells:
        if not cell.get("metadata", {}).get("grading", {}).get("capture"):
            continue
        printed = _printed(cell, PARAMETERS_MARK)
        if isinstance(printed, dict):
            parameters = printed
        printed = _printed(cell, ANSWERS_MARK)
        if isinstance(printed, dict) and isinstance(printed.get("answers"), dict):
            answers[str(printed.get("exercise"))] = printed["answers"]
    return parameters, answers


def run_notebook(notebook: nbformat.NotebookNode, folder: Path, cell_timeout: float, timeout: float,
                 env: dict[str, str] | None = None) -> str | None:
    """Execute ``notebook`` in place in a new kernel started in ``folder`` (with ``env``), each cell within
    ``cell_timeout`` seconds and all of them within ``timeout``. Returns why it stopped early, or None."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    client = NotebookClient(notebook, timeout=cell_timeout, allow_errors=True,
                            resources={"metadata": {"path": str(folder)}})
    client.reset_execution_trackers()
    deadline = time.monotonic() + timeout
    try:
        # The kernel's own start-up chatter on stderr would land in the caller's output: drop it (a failing cell
        # still reports its error in the notebook).
        with client.setup_kernel(env=env or dict(os.environ), stderr=subprocess.DEVNULL):
            for index, cell in enumerate(notebook.cells):
                if cell.cell_type != "code":
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return f"stopped at the submission's time limit ({timeout:g} s)"
                client.timeout = max(1, int(min(cell_timeout, remaining)))
                client.execute_cell(cell, index)
    except CellTimeoutError:
        return (f"a cell ran past its time limit ({client.timeout} s; per cell {cell_timeout:g} s, per "
                f"submission {timeout:g} s)")
    except Exception as error:  # a dead kernel, a kernel that cannot start
        return f"{type(error).__name__}: {str(error)[:200]}"
    return None


def _scratch_environment(scratch: Path) -> dict[str, str]:
    """A copy of the package and of the data folder in ``scratch``, and the environment that makes a kernel use
    them: what a submission writes or deletes there, through the package's own paths or relative ones, is gone
    with the scratch folder."""
    from newsfeed.world.storage import DATA_DIR  # here, not at the top: every kernel imports this module

    shutil.copytree(ROOT / "newsfeed", scratch / "package" / "newsfeed")
    if DATA_DIR.exists():
        shutil.copytree(DATA_DIR, scratch / "data", ignore=shutil.ignore_patterns(".*"))
    (scratch / "work").mkdir()
    return {**os.environ, "PYTHONPATH": str(scratch / "package"), "NEWSFEED_DATA": str(scratch / "data")}


def reference_answers(teacher_path: Path, parameters: dict[str, Any], cell_timeout: float = 600,
                      timeout: float = 3600) -> dict[str, dict[str, Any]]:
    """The reference solutions' answers (as data, by exercise) on the world of ``parameters``: the teacher's
    chapter run in its own kernel, in the teacher's folder."""
    reference = reference_notebook(nbformat.read(teacher_path, as_version=4), parameters)
    run_notebook(reference, teacher_path.parent, cell_timeout, timeout)
    return _captured(reference)[1]


def grade(submission_path: Path, teacher_path: Path | None = None, cell_timeout: float = 300,
          timeout: float = 1800, references: dict[str, Any] | None = None) -> dict[str, Any]:
    """The points per exercise and in total of one submitted notebook.

    The submission runs in its own kernel, in a scratch folder with its own copy of the package and the data;
    only its answers, as data, leave that kernel. The reference solutions run in another kernel, in the
    teacher's chapter with the submission's parameters (its ``SEED``), so the expected answers come from the
    student's own world. Comparison and scoring happen here, in the grader's process. ``references`` caches the
    reference answers across a batch (one run per chapter and parameters). A submission that cannot be read,
    or that stops early, is still reported, with ``error`` saying why.
    """
    submission_path = Path(submission_path)
    teacher_path = Path(teacher_path or ROOT / "chapters" / submission_path.name)
    require("teacher_path", str(teacher_path), teacher_path.is_file(),
            "a chapter notebook of the book (by default the one named like the submission)")
    require("cell_timeout", cell_timeout, cell_timeout > 0, "a number of seconds above 0")
    require("timeout", timeout, timeout > 0, "a number of seconds above 0")
    teacher = nbformat.read(teacher_path, as_version=4)
    exercises = graded_exercises(teacher)
    result: dict[str, Any] = {"exercises": {}, "points": 0, "max": sum(e["points"] for e in exercises.values()),
                              "seed": None}
    try:
        submission = nbformat.read(submission_path, as_version=4)
    except Exception as error:  # missing, not JSON, not a notebook: reported, and the batch goes on
        return {**result, "error": f"not a readable notebook: {type(error).__name__}: {str(error)[:200]}"}
    notebook = answers_notebook(submission, teacher)
    with tempfile.TemporaryDirectory(prefix="newsfeed-grading-") as scratch:
        env = _scratch_environment(Path(scratch))
        stopped = run_notebook(notebook, Path(scratch) / "work", cell_timeout, timeout, env)
    parameters, answers = _captured(notebook)
    key = json.dumps([str(teacher_path.resolve()), parameters], sort_keys=True)
    references = {} if references is None else references
    if key not in references:
        references[key] = reference_answers(teacher_path, parameters)
    grades = {label: score(answers.get(label, {}), references[key].get(label), exercise)
              for label, exercise in exercises.items()}
    result.update(exercises=grades, points=sum(g["points"] for g in grades.values()), seed=parameters.get("SEED"))
    return {**result, "error": stopped} if stopped else result


def grade_batch(submissions: list[Path], teacher_path: Path | None = None, cell_timeout: float = 300,
                timeout: float = 1800) -> Iterator[dict[str, Any]]:
    """One result per submission, in order, each as soon as it is graded; a broken one never stops the batch."""
    references: dict[str, Any] = {}
    for path in submissions:
        try:
            yield {"submission": str(path), **grade(path, teacher_path, cell_timeout, timeout, references)}
        except Exception as error:  # a missing teacher's chapter, say: named, and the next submission is graded
            yield {"submission": str(path), "error": f"{type(error).__name__}: {str(error)[:300]}",
                   "exercises": {}, "points": 0, "max": None, "seed": None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m newsfeed.grading", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, nargs="+", help="submitted notebooks")
    parser.add_argument("--teacher", type=Path, default=None, help="the chapter (default: same file name)")
    parser.add_argument("--cell-timeout", type=float, default=300, help="seconds a cell may run (default 300)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds a whole submission may run (default 1800)")
    args = parser.parse_args(argv)
    for line in grade_batch(args.submissions, args.teacher, args.cell_timeout, args.timeout):
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
