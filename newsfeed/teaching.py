"""The instructor edition: student notebooks without solutions, the exercise inventory and the term plan.

A chapter is the teacher's copy. Its solutions are either ``:::{solution}`` blocks (design answers, graded by
rubric) or code between ``solution-start`` and ``solution-end`` (executed in the book). A coding exercise's
solution cell carries ``grading`` metadata naming the variables that hold its answer::

    {"grading": {"points": 1, "answers": {"relative_rates": {"describe": "...", "rtol": 1e-06}}}}

``student_notebook`` drops every solution and leaves, for each graded exercise, a starter cell that sets those
names to ``None`` under ``# your code here``; ``newsfeed.grading`` grades what students write there.

No grading framework is needed: a notebook client (already installed with Jupyter) and pandas comparisons
grade as well as nbgrader would here, without its ~300 MB and the widget packages that change how progress
bars print (which would break the book's strict output comparison).
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m newsfeed.teaching", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "student",
                        help="where to write the student edition (notebooks and book sources)")
    args = parser.parse_args(argv)
    written = write_student_edition(args.out)
    print(f"student edition: {len(written)} notebooks in {args.out / 'chapters'}")


if __name__ == "__main__":
    main()
