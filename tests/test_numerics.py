"""Stored outputs checked on another processor: numbers within a stated tolerance pass, everything else fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

from newsfeed import numerics
from newsfeed.numerics import Tolerance, numbers_match

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("stored", "fresh"), [
    ("validation loss 0.9352", "validation loss 0.9351"),  # one unit in the last printed digit
    ("retraining recovers 63% of it", "retraining recovers 64% of it"),  # a percentage: one unit
    ("user 1700: 1313 candidates", "user 1700: 1312 candidates"),  # a count within 0.2%
    ("mean 1,234.5 ms", "mean 1,234.6 ms"),
    ("p = 1.2e-05", "p = 1.3e-05"),
    ("two_tower   1000.00\nall       1202.70", "two_tower  1000.000\nall       1202.667"),  # a padded table
])
def test_numbers_that_moved_by_noise_match(stored: str, fresh: str) -> None:
    assert numbers_match(stored, fresh, Tolerance())
    assert not numbers_match(stored, fresh, Tolerance(rel=0.0, units=0))  # and exactly, they differ


@pytest.mark.parametrize(("stored", "fresh"), [
    ("<td>0.607</td>", "<td>0.585</td>"),  # early stopping kept another epoch: a real change
    ("best epoch: 7", "best epoch: 8"),  # whole numbers get no last-digit slack
    ("validation loss 0.9352", "training loss 0.9352"),  # a word changed
    ("0.9352", "0.9352 0.9351"),  # another count of numbers
    ("+1.60 (standard error 1.12)", "+1.48 (standard error 1.01)"),
    ("63%", "0.63"),
])
def test_anything_else_fails(stored: str, fresh: str) -> None:
    assert not numbers_match(stored, fresh, Tolerance())


def test_a_tolerance_is_validated_and_read_from_the_notebook_or_its_cell() -> None:
    with pytest.raises(ValueError, match="rel=0.5 is invalid: rel accepts"):
        Tolerance(rel=0.5)
    with pytest.raises(ValueError, match="units=11 is invalid: units accepts an integer from 0 to 10"):
        Tolerance(units=11)
    notebook = nbformat.v4.new_notebook(metadata={"newsfeed": {"tolerance": {"rel": 0.01}}})
    cell = nbformat.v4.new_code_cell("x", metadata={"newsfeed": {"tolerance": {"rel": 0.0, "units": 2,
                                                                               "why": "a reason"}}})
    assert numerics.tolerance_of(notebook) == Tolerance(rel=0.01)
    assert numerics.tolerance_of(notebook, cell) == Tolerance(rel=0.0, units=2)
    assert numerics.tolerance_of(nbformat.v4.new_notebook()) == Tolerance()


def test_the_fingerprint_names_the_processor_and_the_pinned_kernels() -> None:
    line = numerics.fingerprint()
    assert line.startswith(f"{__import__('platform').system()} | ")
    assert "numpy " in line and "torch " in line


CELLS = {
    "loss": ('print(f"validation loss {0.93521:.4f}")', "validation loss 0.9352\n"),
    "count": ('print(1313, "candidates")', "1313 candidates\n"),
    "table": ('import pandas as pd\npd.DataFrame({"auc": [0.607, 0.931]})', None),
}


def _notebook(stored: dict[str, str], sources: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """A small executed notebook whose stored outputs are ``stored`` (text per cell; the table's HTML is
    computed, then edited by the caller)."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for name, (source, _) in CELLS.items():
        cell = nbformat.v4.new_code_cell((sources or {}).get(name, source), execution_count=1)
        if name == "table":
            import pandas as pd

            frame = pd.DataFrame({"auc": [0.607, 0.931]})
            html, text = frame._repr_html_(), repr(frame)
            for old, new in stored.get("table", {}).items():  # type: ignore[union-attr]
                html, text = html.replace(old, new), text.replace(old, new)
            cell.outputs = [nbformat.v4.new_output("execute_result", {"text/html": html, "text/plain": text},
                                                   execution_count=1)]
        else:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored[name])]
        notebook.cells.append(cell)
    return notebook


def _run(folder: Path) -> dict[str, set[str]]:
    """Run the notebooks in ``folder`` under nbval with this repository's comparison in its default mode ("auto":
    exact for a notebook stamped with this machine's fingerprint, tolerant for any other); the failed cells of each
    notebook."""
    env = {**os.environ, "NOTEBOOK_NUMBERS": "auto"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(folder), "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "-rf",
         "-o", "addopts=--nbval --nbval-current-env", "-n", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    failed: dict[str, set[str]] = {path.stem: set() for path in folder.glob("*.ipynb")}
    for name, cell in re.findall(r"^FAILED \S*/(\w+)\.ipynb::Cell (\d+)", result.stdout, re.M):
        failed[name].add(cell)
    assert "passed" in result.stdout or failed, result.stdout[-2000:]
    return failed


def test_the_tolerant_mode_passes_noise_and_fails_real_changes() -> None:
    """The check the tolerant mode must pass: what a different processor does passes; a changed output, a
    changed source and a changed count fail, and the exact mode still fails on noise.

    One pytest run checks both modes (a run starts in seconds, each notebook's kernel in about one): the notebooks
    stamped as computed on another machine are compared within tolerance, those stamped with this machine's
    fingerprint exactly (conftest.py's "auto", the default)."""
    exact = {"loss": "validation loss 0.9352\n", "count": "1313 candidates\n"}
    noise = {"loss": "validation loss 0.9351\n", "count": "1312 candidates\n", "table": {"0.607": "0.608"}}
    tolerant_cases = {
        "unchanged": _notebook(exact),
        "noise": _notebook(noise),
        # Each of its cells fails for its own change: the table's output (cell 2), the sources and so the count
        # printed (cells 0 and 1).
        "changed": _notebook({**exact, "table": {"0.607": "0.585"}}, {"loss": 'print(f"training loss {0.93521:.4f}")',
                                                                      "count": 'print(1300, "candidates")'}),
    }
    exact_cases = {"exact_unchanged": _notebook(exact), "exact_noise": _notebook(noise)}
    here, elsewhere = numerics.fingerprint(), "Linux | another processor"
    folder = ROOT / "tests" / f".numerics-{uuid.uuid4().hex[:8]}"  # under the root, so conftest.py applies
    folder.mkdir()
    try:
        for cases, machine in ((tolerant_cases, elsewhere), (exact_cases, here)):
            for name, notebook in cases.items():
                notebook.metadata[numerics.METADATA_KEY] = {"computed_on": machine}
                nbformat.write(notebook, folder / f"{name}.ipynb")
        assert _run(folder) == {"unchanged": set(), "noise": set(), "changed": {"0", "1", "2"},
                                "exact_unchanged": set(), "exact_noise": {"0", "1", "2"}}
    finally:
        shutil.rmtree(folder)


def test_the_same_number_printed_to_another_width_matches_even_with_no_slack() -> None:
    assert numbers_match("<td>22.250</td>", "<td>22.25</td>", Tolerance(rel=0.0, units=0))


def test_a_failure_names_each_number_that_moved_too_far() -> None:
    stored = [nbformat.v4.new_output("stream", name="stdout", text="auc 0.607, loss 0.9352\n")]
    fresh = [nbformat.v4.new_output("stream", name="stdout", text="auc 0.585, loss 0.9351\n")]
    assert numerics.explain(fresh, stored, Tolerance()) == ["0.607 became 0.585 (tolerance 0.00121)"]
    aligned, replaced = numerics.align_within_tolerance(fresh, stored, Tolerance(rel=0.05))
    assert replaced == 1 and aligned[0]["text"] == stored[0]["text"]
