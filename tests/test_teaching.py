"""The instructor edition: every coding exercise is autograded, the student edition holds no solution, the
autograder gives the reference solutions full marks, a blank submission none, a plausible wrong answer none of
the points it gets wrong, and a submission that attacks it nothing (and no change to the teacher's files)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from newsfeed import answers, grading, teaching

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


# Chapter 0's reference solutions are graded on the chapter itself; the attacks and the broken submissions on a
# one-exercise chapter written for the purpose, whose kernels start in a second rather than load a world.
TINY = "tiny.ipynb"
TINY_SOLUTION = "spread = spread_of(rng.normal(size=1000))"
# Submissions that try to earn the point without the answer. Each scored full marks when the reference and the
# score ran in the student's kernel, in the teacher's folder.
ATTACKS = {
    "replaces the score": "import newsfeed.grading as t\n"
                          "t.score = lambda *args, **kwargs: {'points': 100, 'max': 1, 'problems': {}}\n"
                          "spread = None",
    "redefines what the reference calls": "def spread_of(values):\n    return 42.0\n\n\nspread = 42.0",
    "runs the teacher's solution": "import nbformat\n"
                                   f"for name in ['{TINY}', '../teacher/{TINY}']:\n"
                                   "    try:\n"
                                   "        teacher = nbformat.read(name, as_version=4)\n"
                                   "    except FileNotFoundError:\n"
                                   "        continue\n"
                                   "    for cell in teacher.cells:\n"
                                   "        if 'grading' in cell.metadata:\n"
                                   "            exec(cell.source)",
    "writes into the package and deletes the chapter": "import pathlib\nimport newsfeed\n"
                                   "pathlib.Path(newsfeed.__file__).with_name('planted.py').write_text('x = 1')\n"
                                   f"for name in ['{TINY}', '../teacher/{TINY}']:\n"
                                   "    pathlib.Path(name).unlink(missing_ok=True)\n"
                                   "spread = None",
}


def _write(notebook: nbformat.NotebookNode, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, nbformat.NotebookNode]:
    """A one-exercise teacher's chapter in its own folder, and its student notebook."""
    setup = nbformat.v4.new_code_cell("import numpy as np\n\nSEED = 0  # seeds every random draw\n"
                                      "rng = np.random.default_rng(SEED)")
    helper = nbformat.v4.new_code_cell("def spread_of(values):\n    return float(np.std(values))")
    solution = nbformat.v4.new_code_cell(TINY_SOLUTION)
    solution.metadata["grading"] = {"points": 1, "answers": {"spread": {"describe": "a spread", "rtol": 1e-6}}}
    teacher = nbformat.v4.new_notebook(cells=[
        setup, helper, nbformat.v4.new_markdown_cell(":::{exercise}\n:label: ex-tiny\nMeasure.\n:::\n\n"
                                                     "```{solution-start} ex-tiny\n```"),
        solution, nbformat.v4.new_markdown_cell("```{solution-end}\n```")])
    return _write(teacher, tmp_path / "teacher" / TINY), teaching.student_notebook(teacher)


def test_the_autograder_round_trip(student: Path, tmp_path: Path) -> None:
    """The reference solutions score full marks. Chapter 0, the quickest to run (its answer is a table read from
    the world), with the student's SCALE set to the small world: the reference scores them only if it runs on the
    student's parameters (on the default world its table differs)."""
    name = "00_framework.ipynb"
    exercises = teaching.graded_exercises(_teacher(name))
    full = sum(e["points"] for e in exercises.values())
    blank = nbformat.read(student / "chapters" / name, as_version=4)
    setup_index, parameters = grading.setup_parameters(blank)
    assert "SCALE" in parameters and 'SCALE = "default"' in blank.cells[setup_index].source
    blank.cells[setup_index].source = blank.cells[setup_index].source.replace('SCALE = "default"', 'SCALE = "small"')
    reference = teaching.with_answers(blank, {label: "\n\n".join(e["code"]) for label, e in exercises.items()})
    # The wrong answer is graded on the instructors' page (its exercise ex-guide-grade), a notebook test too.
    scores = grading.grade(_write(reference, tmp_path / "reference" / name))
    assert scores["points"] == scores["max"] == full and scores["seed"] == 0 and "error" not in scores, scores


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts}


def test_attacks_on_the_autograder_score_nothing_and_change_nothing(tiny: tuple, tmp_path: Path) -> None:
    teacher, blank = tiny
    honest = teaching.with_answers(blank, {"ex-tiny": TINY_SOLUTION})
    paths = [_write(teaching.with_answers(honest, {"ex-tiny": code}), tmp_path / str(i) / TINY)
             for i, code in enumerate(ATTACKS.values())]
    folders = [ROOT / "newsfeed", ROOT / "chapters", teacher.parent]
    before = {folder: _tree(folder) for folder in folders}
    scores = list(grading.grade_batch([*paths, _write(honest, tmp_path / "honest" / TINY),
                                        _write(blank, tmp_path / "blank" / TINY)], teacher))
    assert {folder: _tree(folder) for folder in folders} == before
    for attack, line in zip(ATTACKS, scores, strict=False):
        assert line["points"] == 0 and line["max"] == 1, (attack, line)
    assert scores[-2]["points"] == 1, scores[-2]  # the same batch still grades an honest answer
    assert scores[-1]["exercises"]["ex-tiny"]["problems"] == {"spread": "not set (still None)"}


def test_a_broken_submission_is_reported_and_the_batch_goes_on(tiny: tuple, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    teacher, blank = tiny
    slow = teaching.with_answers(blank, {"ex-tiny": "import time\ntime.sleep(60)"})
    not_a_notebook = tmp_path / "text" / TINY
    not_a_notebook.parent.mkdir()
    not_a_notebook.write_text("my answer is 42")
    paths = [tmp_path / "missing" / TINY, not_a_notebook, _write(slow, tmp_path / "slow" / TINY)]
    grading.main([*map(str, paths), "--teacher", str(teacher), "--cell-timeout", "5"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(line["submission"]).parent.name for line in lines] == ["missing", "text", "slow"]
    assert all(line["points"] == 0 and line["max"] == 1 for line in lines), lines
    assert "not a readable notebook" in lines[0]["error"] and "not a readable notebook" in lines[1]["error"]
    assert "time limit" in lines[2]["error"], lines[2]


def test_answers_leave_the_kernel_as_data_and_compare_within_tolerance() -> None:
    table = pd.DataFrame({"click": [1.0, 0.5, np.nan], "like": [1, 2, 3]}, index=[1, 2, 3])
    data = json.loads(json.dumps(answers.answer_data(table)))
    assert grading.compare(answers.answer_table(data), answers.answer_table(data), {"rtol": 1e-6}) is None
    nudged = answers.answer_data(table * (1 + 1e-4))
    assert "differ by more than the tolerance" in grading.compare(
        answers.answer_table(nudged), answers.answer_table(data), {"rtol": 1e-6})
    assert grading.compare(answers.answer_table(nudged), answers.answer_table(data), {"rtol": 1e-2}) is None
    assert answers.answer_table(answers.answer_data(None)) == "not set (still None)"
    assert "got str" in answers.answer_table(answers.answer_data("0.5"))
    assert "could not be read" in answers.answer_table({"values": 1})


def test_parameters_reach_the_reference_as_literals_only() -> None:
    """The student's SEED reaches the reference kernel as a literal written into the teacher's setup cell:
    whatever the student's kernel printed, it can only set a value, never run code there."""
    teacher = _teacher("00_framework.ipynb")
    index, names = grading.setup_parameters(teacher)
    assert {"SEED", "SCALE"} <= set(names)
    hostile = {"SEED": 7, "SCALE": "default\nimport os", "INTERVIEW_MINUTES": float("nan")}
    setup = grading.reference_notebook(teacher, hostile).cells[index].source
    assert "SEED = 7" in setup and "SCALE = 'default\\nimport os'" in setup
    assert "INTERVIEW_MINUTES = 45" in setup  # not a finite number: the teacher's value stays
    ast.parse(setup)
