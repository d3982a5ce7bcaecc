"""Test-wide settings: the same environment a notebook kernel gets from `make test`, even under plain `pytest`."""

import os
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import IPyNbCell

from newsfeed import numerics
from newsfeed.notebook import pin_cpu_kernels

# Kernels started by nbval inherit this process's environment: fix set ordering and math-library threads.
for name, value in {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                    "MKL_NUM_THREADS": "1"}.items():
    os.environ.setdefault(name, value)
pin_cpu_kernels()  # the same instruction set as the stored outputs were computed with (see newsfeed.notebook)

#: How notebooks' fresh outputs are compared with their stored ones: "exact", "tolerant" (numbers within the
#: chapter's stated tolerance, see newsfeed.numerics), or "auto" (the default): exact for a notebook whose outputs
#: were computed on a machine with this one's fingerprint, tolerant for any other.
NUMBERS = os.environ.get("NOTEBOOK_NUMBERS", "auto")
if NUMBERS not in ("auto", "exact", "tolerant"):
    raise pytest.UsageError(f"NOTEBOOK_NUMBERS={NUMBERS!r} is invalid: it accepts auto, exact or tolerant")


def _mode(notebook: nbformat.NotebookNode) -> str:
    if NUMBERS != "auto":
        return NUMBERS
    return "exact" if numerics.stored_on(notebook) == numerics.fingerprint() else "tolerant"


#: Per notebook: its comparison mode, and the cells that matched only within tolerance (for the closing summary).
_CHECKED: dict[str, dict] = {}
_exact_compare = IPyNbCell.compare_outputs


def _compare_outputs(self: IPyNbCell, test: list, ref: list, skip_compare: tuple | None = None) -> bool:
    """nbval's comparison, after numbers that moved within tolerance are set back to their stored text (in the
    tolerant mode only): whatever else differs still fails, and is reported as nbval reports it."""
    notebook = self.parent.nb
    record = _CHECKED.setdefault(self.parent.name, {"mode": _mode(notebook), "tolerated": 0})
    if record["mode"] != "tolerant":
        return _exact_compare(self, test, ref, skip_compare)
    tolerance = numerics.tolerance_of(notebook, self.cell)
    aligned, replaced = numerics.align_within_tolerance(test, ref, tolerance, self.sanitize)
    record["tolerated"] += bool(replaced)
    if _exact_compare(self, [nbformat.from_dict(output) for output in aligned], ref, skip_compare):
        return True
    self.comparison_traceback.append(f"compared within {tolerance}; beyond it:")
    self.comparison_traceback += [f"  {line}" for line in numerics.explain(test, ref, tolerance, self.sanitize)]
    return False


IPyNbCell.compare_outputs = _compare_outputs


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"this machine's numerics: {numerics.fingerprint()}",
            f"notebook outputs compared: {NUMBERS} (NOTEBOOK_NUMBERS; auto = exact where stored on this machine's "
            "kind, else within each chapter's tolerance)"]


def pytest_configure(config: object) -> None:
    """Before the workers start, build what the chapters share: the default world and the shipped network.

    Chapters 5 to 7 load the network chapter 4 trains; with two workers they may start before chapter 4 has
    finished, and each would train its own copy. Building the caches once here (the same code, seed and data
    the chapters use, so the same files) keeps every chapter's run what it is in the book. Only when chapters
    are collected, and only in the controlling process.
    """
    if hasattr(config, "workerinput") or not any("chapters" in str(arg) for arg in config.args):
        return
    from newsfeed import features, models
    from newsfeed.notebook import setup
    from newsfeed.world import artifacts_folder, load_world

    setup(0)
    dataset = features.build_dataset(load_world("default", 0), seed=0)
    models.final_multitask(dataset, artifacts_folder("default", 0))


#: About how long the slowest test modules take, in seconds (from ``pytest --durations``); it only sets the order in
#: which the two workers take files, so it need not be exact. A notebook's own recorded run time is used for it.
MODULE_SECONDS = {"test_site.py": 90, "test_teaching.py": 70, "test_benchmarks.py": 55, "test_world.py": 35,
                  "test_models.py": 30, "test_scaling.py": 30, "test_numerics.py": 20, "test_features.py": 20,
                  "test_serving.py": 20, "test_experiments.py": 15, "test_monitoring.py": 15}


def _expected_seconds(path: Path) -> float:
    if path.suffix == ".ipynb":
        import nbformat

        from newsfeed.teaching import execution_seconds

        return execution_seconds(nbformat.read(path, as_version=4)) or 60.0
    return MODULE_SECONDS.get(path.name, 5.0)


def pytest_collection_modifyitems(items: list) -> None:
    """The longest files first. The two workers take whole files in collection order (``--dist loadfile``), so a
    long file collected last would run alone at the end while the other core idles; longest-first packs them."""
    seconds: dict[Path, float] = {}
    for item in items:
        if item.path not in seconds:
            seconds[item.path] = _expected_seconds(item.path)
    items.sort(key=lambda item: -seconds[item.path])  # stable: each file's tests keep their order


def pytest_terminal_summary(terminalreporter: object) -> None:
    """Say which mode checked each notebook, and say loudly when the browser tests could not run
    (tests/test_site.py skips them without a Chromium)."""
    _report_numbers(terminalreporter)
    for report in terminalreporter.stats.get("skipped", []):
        if "BROWSER TESTS NOT RUN" in str(report.longrepr):
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
            terminalreporter.write_sep("!", reason.removeprefix("Skipped: "), red=True, bold=True)
            return


def _report_numbers(terminalreporter: object) -> None:
    """One line per mode: which notebooks were compared exactly and which within tolerance (and in how many of
    their cells a number moved). Workers hold the records under xdist, so they are read back from the reports."""
    checked = dict(_CHECKED)
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for name, value in getattr(report, "user_properties", []):
            if name == "notebook_numbers":
                mode, tolerated = value
                entry = checked.setdefault(Path(report.nodeid.split("::")[0]).name, {"mode": mode, "tolerated": 0})
                entry["tolerated"] = max(entry["tolerated"], tolerated)
    if not checked:
        return
    terminalreporter.write_sep("-", f"notebook outputs (NOTEBOOK_NUMBERS={NUMBERS}; this machine: "
                                    f"{numerics.fingerprint()})")
    for mode in ("exact", "tolerant"):
        names = sorted(name for name, entry in checked.items() if entry["mode"] == mode)
        if names:
            detail = ", ".join(f"{name} ({checked[name]['tolerated']} cells moved)" if mode == "tolerant" else name
                               for name in names)
            how = ("exactly" if mode == "exact" else "within each chapter's tolerance")
            terminalreporter.write_line(f"compared {how}: {detail}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Carry a notebook cell's comparison mode to the controlling process (xdist workers hold _CHECKED)."""
    outcome = yield
    if call.when == "call" and isinstance(item, IPyNbCell):
        record = _CHECKED.get(item.parent.name)
        if record is not None:
            outcome.get_result().user_properties.append(("notebook_numbers", (record["mode"], record["tolerated"])))
