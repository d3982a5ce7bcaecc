"""The instructor edition: every coding exercise is autograded, the student edition holds no solution, and the
autograder gives the reference solutions full marks, a blank submission none, and a plausible wrong answer
none of the points it gets wrong."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from newsfeed import teaching

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def _teacher(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "chapters" / name, as_version=4)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_coding_exercise_is_autograded(path: Path) -> None:
    teacher = nbformat.read(path, as_version=4)
    text = "\n".join(cell.source for cell in teacher.cells if cell.cell_type == "markdown")
    coding = set(re.findall(r":::\{exercise\}\n:label: (\S+)\n\*\*Coding\.\*\*", text))
    graded = teaching.graded_exercises(teacher)
    assert coding and set(graded) == coding, "exactly the coding exercises carry grading metadata"
    for label, exercise in graded.items():
        assigned = {target.id for code in exercise["code"] for node in ast.walk(ast.parse(code))
                    if isinstance(node, ast.Assign) for target in node.targets if isinstance(target, ast.Name)}
        assert set(exercise["answers"]) <= assigned, f"{label}: the solution sets every answer it grades"
        prompt = text[text.index(f":label: {label}"):]
        prompt = prompt[:prompt.index(":::")]
        for name in exercise["answers"]:
            assert f"`{name}`" in prompt, f"{label}: the exercise tells the student to answer in `{name}`"


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("student")
    teaching.write_student_edition(out)
    return out


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_student_edition_holds_no_solution(student: Path, path: Path) -> None:
    teacher = nbformat.read(path, as_version=4)
    copy = nbformat.read(student / "chapters" / path.name, as_version=4)
    student_text = "\n".join(cell.source for cell in copy.cells)
    assert "{solution" not in student_text
    for cell in teacher.cells:  # no line of any solution, code or prose, survives
        if cell.cell_type == "markdown":
            for block in teaching.BLOCK.findall(cell.source):
                body = [line for line in block.splitlines()[2:] if len(line.strip()) > 40]
                assert not any(line in student_text for line in body), body[:1]
    for _, cell in teaching.solution_code_cells(teacher):
        assert cell.source not in student_text
    starters = [cell for cell in copy.cells if cell.metadata.get("grading", {}).get("starter")]
    assert [c.metadata.grading.exercise for c in starters] == list(teaching.graded_exercises(teacher))
    assert all(not cell.outputs and "your code here" in cell.source for cell in starters)
    kept = sum(len(cell.outputs) for cell in copy.cells if cell.cell_type == "code")
    solution_outputs = sum(len(cell.outputs) for _, cell in teaching.solution_code_cells(teacher))
    assert kept == sum(len(c.outputs) for c in teacher.cells if c.cell_type == "code") - solution_outputs


def test_the_student_edition_leaves_out_the_instructor_guide(student: Path) -> None:
    assert not (student / "chapters" / "appendix_teaching.ipynb").exists()
    assert "appendix_teaching" not in (student / "_toc.yml").read_text()


def test_the_student_site_builds_without_solutions(student: Path) -> None:
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jupyter_book), "build", str(student), "-W", "-n", "--keep-going"], check=True,
                   capture_output=True)
    pages = list((student / "_build" / "html" / "chapters").glob("*.html"))
    assert len(pages) >= len(CHAPTERS)
    assert not [page.name for page in pages if 'class="solution' in page.read_text()]


# Submissions graded here, by chapter: chapter 1 gets all three (the reference solutions, a blank submission and
# a plausible wrong answer, with the exercise it must lose), chapter 0 a sabotage. Two short
# chapters keep the round trip under a minute.
WRONG = {
    "ex-00-position": "top = world.impressions.query('position <= 20')\n"
                      "relative_rates = top.groupby('position')[['click', 'like']].mean()  # not divided",
    "ex-01-cores": "heavier = ASSUMPTIONS  # forgot that the ranker is five times heavier\n"
                   "max_candidates = 100_000 * heavier.flops_per_core_second / (\n"
                   "    estimate(heavier).peak_requests_per_second * heavier.flops_per_candidate)",
}
# A submission that breaks what the reference reads must not be compared with itself: it scores zero.
SABOTAGE = {"ex-00-position": "relative_rates = 1.0\nworld = None  # the reference reads world: it cannot run"}
ROUND_TRIPS = {"00_framework.ipynb": ("sabotage",),
               "01_requirements.ipynb": ("reference", "blank", "wrong")}


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_the_autograder_round_trip(student: Path, tmp_path: Path, name: str) -> None:
    teacher = _teacher(name)
    exercises = teaching.graded_exercises(teacher)
    full = sum(e["points"] for e in exercises.values())
    blank = nbformat.read(student / "chapters" / name, as_version=4)
    reference = teaching.with_answers(blank, {label: "\n\n".join(e["code"]) for label, e in exercises.items()})
    wrong = teaching.with_answers(reference, {k: v for k, v in WRONG.items() if k in exercises})
    sabotage = teaching.with_answers(reference, {k: v for k, v in SABOTAGE.items() if k in exercises})
    submissions = {"reference": reference, "blank": blank, "wrong": wrong, "sabotage": sabotage}
    for kind in ROUND_TRIPS[name]:
        path = tmp_path / kind / name
        path.parent.mkdir()
        nbformat.write(submissions[kind], path)
        scores = teaching.grade(path, ROOT / "chapters" / name)
        assert scores["max"] == full, scores
        if kind == "reference":
            assert scores["points"] == full, scores
        elif kind in ("blank", "sabotage"):
            assert scores["points"] == 0, scores
        else:
            lost = [label for label in WRONG if label in exercises]
            assert all(scores["exercises"][label]["points"] == 0 for label in lost), scores
            assert scores["points"] == full - sum(exercises[label]["points"] for label in lost), scores
