"""Every chapter follows the book's template, is in the table of contents, and is stored executed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from newsfeed import teaching
from newsfeed.notebook import PAGE_WIDTH

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))  # the chapters and the appendix pages
TOC = (ROOT / "_toc.yml").read_text()
BIB_KEYS = set(re.findall(r"@\w+\{(\w+),", (ROOT / "references.bib").read_text()))


def markdown(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_there_are_chapters() -> None:
    assert CHAPTERS, "chapters/ has no NN_name.ipynb notebooks"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_template(path: Path) -> None:
    text = markdown(path)
    assert text.lstrip().startswith("# "), "a chapter opens with its title"
    assert re.search(r":::\{admonition\} Learning objectives", text)
    assert re.search(r"\*\*Time in the interview:\*\*", text)
    assert re.search(r":::\{admonition\} In the interview", text)
    exercises = re.findall(r":::\{exercise\}\n:label: (\S+)", text)
    solutions = re.findall(r":::\{solution\} (\S+)\n:class: dropdown", text)
    gated = re.findall(r"```\{solution-start\} (\S+)\n:class: dropdown\n```", text)
    assert len(exercises) >= 3, "at least three exercises"
    assert sorted(exercises) == sorted(solutions + gated), "every exercise has one dropdown solution"
    assert len(re.findall(r"```\{solution-end\}\n```", text)) == len(gated), "every gated solution is closed"
    assert re.search(r"\*\*Coding\.\*\*", text), "one exercise is a coding exercise"
    assert re.search(r"^## Summary", text, re.M) and re.search(r"^## References", text, re.M)
    cited = {key for group in re.findall(r"\{cite\}`([^`]+)`", text) for key in group.split(",")}
    assert cited, "a chapter cites its sources"
    assert cited <= BIB_KEYS, f"unknown citation keys {cited - BIB_KEYS}"
    assert f"chapters/{path.stem}" in TOC, "listed in _toc.yml"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_coding_solutions_are_executed_cells(path: Path) -> None:
    """A coding exercise's solution is code that runs (and that nbval checks), inside a gated solution."""
    cells = json.loads(path.read_text())["cells"]
    inside, coding, solved = None, set(), set()
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            coding |= set(re.findall(r":::\{exercise\}\n:label: (\S+)\n\*\*Coding\.\*\*", source))
            assert not re.search(r":::\{solution\}[^`]*```python", source), "solution code must be a code cell"
            started = re.findall(r"```\{solution-start\} (\S+)", source)
            inside = started[-1] if started else inside
            if "```{solution-end}" in source and not started:
                inside = None
        elif inside is not None and source.strip():
            solved.add(inside)
    assert coding, "a chapter has a coding exercise"
    assert coding <= solved, f"coding exercises whose solution runs no code: {sorted(coding - solved)}"


#: The algorithm each chapter teaches, shown on its page from the package's source (``show_source``).
TAUGHT: dict[str, tuple[str, ...]] = {
    "03_data_preparation": ("def running_sums", "def as_of_join"),
    "04_model_development": ("def correct_for_negative_sampling", "class MultiTaskNetwork", "def _loss",
                             "def fit"),
    "05_evaluation": ("def compare_arms",),
    "06_serving": ("def rerank", "def in_batch_softmax_loss", "def table"),
    "07_monitoring": ("def psi", "def warm_started"),
    "08_scaling": ("def _within_partition", "def _jobs"),
    "09_logged_feedback": ("def shuffled_top", "class Relabeled", "def session_terms"),
    "10_experiments": ("def looks", "def msprt"),
    "11_responsible_ranking": ("def demoted", "def near_duplicate_groups"),
}


@pytest.mark.parametrize("stem", sorted(TAUGHT))
def test_taught_algorithm_is_shown_from_the_package(stem: str) -> None:
    cells = json.loads((ROOT / "chapters" / f"{stem}.ipynb").read_text())["cells"]
    shown = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code"
                    and "show_source(" in "".join(c["source"]) for o in c["outputs"])
    missing = [name for name in TAUGHT[stem] if f"\n{name}(" not in shown and f"\n    {name}(" not in shown]
    assert not missing, f"the chapter does not show the package's source of {missing}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_stored_executed_without_errors(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert all(c["execution_count"] is not None for c in code), "every code cell has been executed"
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), "executed top to bottom in one fresh run"
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    setup = "".join(code[0]["source"])
    assert "setup(" in setup and "SEED" in setup, "the first code cell is the setup cell with the parameters"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_world_scale_is_a_reader_parameter(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    if not any("load_world(" in source or "simulate(" in source for source in code):
        return
    setup = next(source for source in code if source.strip())
    assert re.search(r"^SCALE = ", setup, re.M), "a chapter that builds a world takes its scale from SCALE"
    assert not any(re.search(r"(scale=|at_scale\()\"", source) for source in code), "no hard-coded scale"


#: Characters of code or printed output that the rendered book shows on one line at 1280 px (see
#: _static/book.css; tests/test_site.py measures it in a browser).
LINE_WIDTH = PAGE_WIDTH
#: A solution's box is indented inside the column: its code holds 94 characters at 1280 px (measured the
#: same way); 92 leaves a margin.
SOLUTION_WIDTH = 92


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_and_printed_output_fit_the_page(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] == "code":
            lines += [("code", line) for line in "".join(cell["source"]).splitlines()]
            for output in cell["outputs"]:
                data = output.get("data", {})
                shown_as_text = output.get("text") or (
                    data.get("text/plain") if not {"text/html", "image/png"} & data.keys() else None)
                lines += [("output", line) for line in "".join(shown_as_text or "").splitlines()]
        else:
            fenced = re.findall(r"```python\n(.*?)```", "".join(cell["source"]), re.S)
            lines += [("solution code", line) for block in fenced for line in block.splitlines()]
    too_long = [f"{kind}: {line[:60]}..." for kind, line in lines if len(line) > LINE_WIDTH]
    assert not too_long, f"lines over {LINE_WIDTH} characters scroll sideways in the book: {too_long}"
    teacher = nbformat.read(path, as_version=4)
    in_solutions = [line for _, cell in teaching.solution_code_cells(teacher) for line in cell.source.splitlines()]
    too_long = [line[:60] for line in in_solutions if len(line) > SOLUTION_WIDTH]
    assert not too_long, f"solution code over {SOLUTION_WIDTH} characters scrolls in its box: {too_long}"
