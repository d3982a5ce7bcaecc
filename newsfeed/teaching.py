"""The instructor edition: student notebooks without solutions, and an autograder for the coding exercises.

A chapter is the teacher's copy. Its solutions are either ``:::{solution}`` blocks (design answers, graded by
rubric) or code between ``solution-start`` and ``solution-end`` (executed in the book). A coding exercise's
solution cell carries ``grading`` metadata naming the variables that hold its answer::

    {"grading": {"points": 1, "answers": {"relative_rates": {"describe": "...", "rtol": 1e-06}}}}

``student_notebook`` drops every solution and leaves, for each graded exercise, a starter cell that sets those
names to ``None`` under ``# your code here``. ``grade`` runs a student's notebook with the reference solutions
inserted after each answer: it first keeps what the student's code left in the answer names, then runs the
reference code in the same kernel, so the expected value comes from the student's own world and ``SEED``
(nothing is typed in), and compares the two within each answer's tolerance.

No grading framework is needed: a notebook client (already installed with Jupyter) and pandas comparisons
grade as well as nbgrader would here, without its ~300 MB and the widget packages that change how progress
bars print (which would break the book's strict output comparison).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pandas as pd

from newsfeed.validation import require

ROOT = Path(__file__).resolve().parents[1]
START = re.compile(r"```\{solution-start\}\s*(?P<label>\S+)[^`]*?```\n?")
END = re.compile(r"```\{solution-end\}\s*```\n?")
EXERCISE = re.compile(r":::\{exercise\}\n:label: (?P<label>\S+)\n(?P<prompt>.*?)\n:::", re.S)
BLOCK = re.compile(r":::\{solution\}[^\n]*\n.*?^:::[ \t]*(?:\n|$)", re.S | re.M)
# What a student copy of the book needs beside the notebooks, to build its own site.
# What a student copy needs beside the notebooks: the book's sources, to build its site, and the package and
# its set-up, so that `make lab` runs the chapters there. Nothing here holds a solution.
BOOK_FILES = ["_config.yml", "_toc.yml", "intro.md", "references.bib", "logo.svg", "_static", "_ext",
              "data/README.md", "newsfeed", "requirements.txt", "pyproject.toml", "Makefile"]
# The student site's landing page says what the student edition is, instead of the instructors' section.
STUDENT_INTRO = """## The student edition

This is the **student edition**: the chapters without their solutions. Each coding exercise has a starter cell
that names the variables your answer goes in; keep that cell, the notebook's file name, and a whole-number
`SEED` of your own in the setup cells. Run the chapters with `make lab` in this folder.

"""
GRADES_MARK = "GRADES "
# Pages for the teacher only: left out of the student edition and its table of contents.
TEACHER_ONLY = ["chapters/appendix_teaching"]


def graded_exercises(teacher: nbformat.NotebookNode) -> dict[str, dict[str, Any]]:
    """Each graded exercise's spec (points, answers) and its reference solution code, by exercise label."""
    exercises: dict[str, dict[str, Any]] = {}
    for label, cell in solution_code_cells(teacher):
        entry = exercises.setdefault(label, {"points": 0, "answers": {}, "code": []})
        entry["code"].append(cell.source)
        if "grading" in cell.metadata:
            entry["points"] += cell.metadata.grading.get("points", 1)
            entry["answers"].update(cell.metadata.grading["answers"])
    return {label: entry for label, entry in exercises.items() if entry["answers"]}


def solution_code_cells(teacher: nbformat.NotebookNode) -> Iterator[tuple[str, nbformat.NotebookNode]]:
    """(exercise label, code cell) for every code cell between a solution-start and its solution-end."""
    inside = None
    for cell in teacher.cells:
        if cell.cell_type == "markdown":
            for marker in re.finditer(f"{START.pattern}|{END.pattern}", cell.source):
                inside = marker.group("label")
        elif inside:
            yield inside, cell


def starter_cell(label: str, answers: dict[str, Any]) -> nbformat.NotebookNode:
    """The cell a student writes the answer in: every answer name, what it holds, set to None."""
    lines = [f"# Exercise {label}: your code here (in this cell and code cells right below it).",
             "# The autograder reads these names before the next text cell (see the exercise):"]
    for name, spec in answers.items():
        lines += textwrap.wrap(f"{name}: {spec['describe']} (graded within {spec['rtol'] * 100:.2g}%)", 96,
                               initial_indent="# - ", subsequent_indent="#   ")
    lines += [f"{name} = None" for name in answers]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["grading"] = {"exercise": label, "starter": True}
    return cell


def student_notebook(teacher: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The chapter without any solution: prompts and the chapter's own outputs kept, starters where code was."""
    graded = graded_exercises(teacher)
    student = copy.deepcopy(teacher)
    cells: list[nbformat.NotebookNode] = []
    inside = None
    for cell in teacher.cells:
        if cell.cell_type != "markdown":
            if not inside:
                cells.append(copy.deepcopy(cell))
            continue
        text, kept = BLOCK.sub("", cell.source), ""
        position = 0
        for marker in re.finditer(f"{START.pattern}|{END.pattern}", text):
            if not inside:
                kept += text[position:marker.start()]
            if marker.group("label"):
                inside = marker.group("label")
            else:
                if kept.strip():
                    cells.append(nbformat.v4.new_markdown_cell(kept.strip()))
                kept = ""
                if inside in graded:
                    cells.append(starter_cell(inside, graded[inside]["answers"]))
                inside = None
            position = marker.end()
        if not inside:
            kept += text[position:]
        if kept.strip():
            cells.append(nbformat.v4.new_markdown_cell(kept.strip()))
    student.cells = cells
    return student


def with_answers(student: nbformat.NotebookNode, code: dict[str, str]) -> nbformat.NotebookNode:
    """A submission: the student notebook with each listed exercise's starter cell replaced by ``code``.

    ``with_answers(student, {label: "\\n\\n".join(e["code"]) for label, e in graded_exercises(teacher).items()})``
    is the reference submission, which must score full marks.
    """
    submission = copy.deepcopy(student)
    for cell in submission.cells:
        label = cell.metadata.get("grading", {}).get("exercise")
        if label in code:
            cell.source = code[label]
    return submission


def write_student_edition(out: Path, chapters: Path = ROOT / "chapters") -> list[Path]:
    """Student notebooks for every chapter, and the book's other sources, in ``out`` (a buildable book)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in BOOK_FILES:
        source, target = ROOT / name, out / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    intro = (ROOT / "intro.md").read_text()
    start, end = intro.index("## How instructors can use it"), intro.index("## Contents")
    (out / "intro.md").write_text(intro[:start] + STUDENT_INTRO + intro[end:])
    toc = (ROOT / "_toc.yml").read_text().splitlines(keepends=True)
    (out / "_toc.yml").write_text("".join(line for line in toc if not any(f"file: {page}" in line
                                                                          for page in TEACHER_ONLY)))
    (out / "chapters").mkdir(exist_ok=True)
    written = []
    for page in sorted(chapters.iterdir()):
        if f"chapters/{page.stem}" in TEACHER_ONLY:
            continue
        target = out / "chapters" / page.name
        if page.suffix == ".ipynb":
            nbformat.write(student_notebook(nbformat.read(page, as_version=4)), target)
            written.append(target)
        elif page.suffix == ".md":
            shutil.copy2(page, target)
    return written


def exercise_inventory(chapters: list[Path]) -> pd.DataFrame:
    """Every exercise of the given chapters, in order: its chapter, label, and how it is graded.

    A coding exercise (its solution carries grading metadata) is autograded, for its points; every other
    exercise is a design question, graded by rubric against the solution in the teacher's copy.
    """
    rows = []
    for path in chapters:
        teacher = nbformat.read(path, as_version=4)
        graded = graded_exercises(teacher)
        text = "\n".join(cell.source for cell in teacher.cells if cell.cell_type == "markdown")
        for match in EXERCISE.finditer(text):
            label = match["label"]
            rows.append({"chapter": path.stem, "label": label,
                         "graded": "autograded" if label in graded else "rubric",
                         "answers": ", ".join(graded.get(label, {}).get("answers", {}))})
    return pd.DataFrame(rows)


def reading_words(notebook: nbformat.NotebookNode) -> int:
    """Words of prose a reader reads in a chapter (its markdown; code and outputs are not counted)."""
    return sum(len(cell.source.split()) for cell in notebook.cells if cell.cell_type == "markdown")


def execution_seconds(notebook: nbformat.NotebookNode) -> float | None:
    """Wall time of the chapter's last full execution, from the timings ``make execute`` records in each
    cell's metadata (None if it was executed without them)."""
    spans = [cell.metadata["execution"] for cell in notebook.cells
             if cell.cell_type == "code" and "execution" in cell.metadata]
    starts = [pd.Timestamp(span["iopub.execute_input"]) for span in spans if "iopub.execute_input" in span]
    ends = [pd.Timestamp(span["shell.execute_reply"]) for span in spans if "shell.execute_reply" in span]
    if not starts or not ends:
        return None
    return (max(ends) - min(starts)).total_seconds()


def snapshot(value: Any) -> Any:
    """A copy of an answer, safe from later cells that reuse its name or mutate it."""
    try:
        return copy.deepcopy(value)
    except Exception:  # an object that cannot be copied is compared as it is
        return value


def _as_table(value: Any) -> pd.DataFrame | None:
    """Numbers, Series, dicts and DataFrames as one DataFrame, so every answer compares the same way."""
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, pd.Series):
        return value.to_frame("value")
    if isinstance(value, dict):
        return _as_table(pd.Series(value))
    if isinstance(value, int | float | np.number | np.ndarray | list | tuple):
        return pd.DataFrame({"value": np.ravel(np.asarray(value, dtype=float))})
    return None


def compare(submitted: Any, expected: Any, spec: dict[str, Any]) -> str | None:
    """Why ``submitted`` is not ``expected`` within ``spec['rtol']`` (None when it is).

    Every row and column of the expected answer must be in the submission (extra ones are ignored);
    ``spec['columns']``, if given, limits the comparison to those columns.
    """
    if submitted is None:
        return "not set (still None)"
    got, want = _as_table(submitted), _as_table(expected)
    if got is None or want is None:
        return f"expected numbers, a Series or a DataFrame, got {type(submitted).__name__}"
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


def score(label: str, submitted: dict[str, Any], expected: dict[str, Any], exercise: dict[str, Any]) -> dict:
    """The points one exercise earns: all its answers right, or none of its points."""
    if any(expected.get(name) is None for name in exercise["answers"]):
        # The reference solution raised: a cell above it failed, or the notebook changed what it reads.
        return {"points": 0, "max": exercise["points"],
                "problems": {"": "the reference solution could not run after this notebook's cells"}}
    problems = {name: compare(submitted.get(name), expected.get(name), spec)
                for name, spec in exercise["answers"].items()}
    problems = {name: why for name, why in problems.items() if why}
    return {"points": 0 if problems else exercise["points"], "max": exercise["points"], "problems": problems}


def grading_notebook(submission: nbformat.NotebookNode, teacher: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The submission with, after each answer, the capture of the student's answer, the reference solution
    (run in the same kernel, on the same world) and the comparison; and a last cell printing the grades."""
    graded = graded_exercises(teacher)
    cells = [nbformat.v4.new_code_cell("from newsfeed import teaching as _teaching\n_answers, _grades = {}, {}")]
    pending = None
    for cell in submission.cells:
        label = cell.metadata.get("grading", {}).get("exercise") if cell.cell_type == "code" else None
        if pending and (cell.cell_type == "markdown" or label):
            cells += _check_cells(pending, graded[pending])
            pending = None
        cells.append(copy.deepcopy(cell))
        if label in graded:
            pending = label
    if pending:
        cells += _check_cells(pending, graded[pending])
    cells.append(nbformat.v4.new_code_cell(
        f"print({GRADES_MARK!r} + _teaching.json.dumps({{'grades': _grades, 'seed': globals().get('SEED')}},"
        " default=str))"))
    graded_copy = copy.deepcopy(submission)
    graded_copy.cells = cells
    return graded_copy


def _check_cells(label: str, exercise: dict[str, Any]) -> list[nbformat.NotebookNode]:
    """Keep the student's answer and clear the names, run the reference, compare: a reference that fails
    leaves its names unset, so a student's answer is never compared with itself."""
    names = list(exercise["answers"])
    keep = (f"_answers[{label!r}] = {{n: _teaching.snapshot(globals().get(n)) for n in {names!r}}}\n"
            f"for _name in {names!r}:\n    globals().pop(_name, None)")
    reference = "\n\n".join(exercise["code"])
    spec = json.dumps({key: value for key, value in exercise.items() if key != "code"})
    check = (f"_grades[{label!r}] = _teaching.score({label!r}, _answers[{label!r}], "
             f"{{n: globals().get(n) for n in {names!r}}}, _teaching.json.loads({spec!r}))")
    return [nbformat.v4.new_code_cell(keep), nbformat.v4.new_code_cell(reference), nbformat.v4.new_code_cell(check)]


def grade(submission_path: Path, teacher_path: Path | None = None, timeout: int = 600) -> dict[str, Any]:
    """Run a student's notebook with the reference solutions and return the points per exercise and in total."""
    from nbclient import NotebookClient

    submission_path = Path(submission_path)
    teacher_path = Path(teacher_path or ROOT / "chapters" / submission_path.name)
    require("teacher_path", str(teacher_path), teacher_path.exists(),
            "a chapter notebook of the book (by default the one named like the submission)")
    teacher = nbformat.read(teacher_path, as_version=4)
    notebook = grading_notebook(nbformat.read(submission_path, as_version=4), teacher)
    client = NotebookClient(notebook, timeout=timeout, allow_errors=True,
                            resources={"metadata": {"path": str(teacher_path.parent)}})
    try:
        # The kernel's own start-up chatter on stderr would land in the caller's output: drop it (a failing
        # cell still reports its error in the notebook).
        client.execute(stderr=subprocess.DEVNULL)
    except Exception as error:  # a timeout or a dead kernel: this submission is not graded, the batch goes on
        return {"error": f"{type(error).__name__}: {str(error)[:200]}", "exercises": {}, "points": 0,
                "max": sum(e["points"] for e in graded_exercises(teacher).values()), "seed": None}
    printed = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    run = json.loads(printed.split(GRADES_MARK, 1)[1]) if GRADES_MARK in printed else {}
    grades = run.get("grades", {})
    for label, exercise in graded_exercises(teacher).items():  # an exercise whose checks never ran
        grades.setdefault(label, {"points": 0, "max": exercise["points"], "problems": {"": "not graded"}})
    return {"exercises": grades, "points": sum(g["points"] for g in grades.values()),
            "max": sum(g["max"] for g in grades.values()), "seed": run.get("seed")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m newsfeed.teaching", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", help="write the student edition (notebooks and book sources)")
    student.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    marking = commands.add_parser("grade", help="autograde submitted notebooks; prints a JSON line each")
    marking.add_argument("submissions", type=Path, nargs="+")
    marking.add_argument("--teacher", type=Path, default=None, help="the chapter (default: same file name)")
    args = parser.parse_args(argv)
    if args.command == "student":
        written = write_student_edition(args.out)
        print(f"student edition: {len(written)} notebooks in {args.out / 'chapters'}")
    else:
        for path in args.submissions:  # one JSON line per submission, as soon as it is graded
            print(json.dumps({"submission": str(path), **grade(path, args.teacher)}), flush=True)


if __name__ == "__main__":
    main()
