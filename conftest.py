"""Test-wide settings: the same environment a notebook kernel gets from `make test`, even under plain `pytest`."""

import os
from pathlib import Path

from newsfeed.notebook import pin_cpu_kernels

# Kernels started by nbval inherit this process's environment: fix set ordering and math-library threads.
for name, value in {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                    "MKL_NUM_THREADS": "1"}.items():
    os.environ.setdefault(name, value)
pin_cpu_kernels()  # the same instruction set as the stored outputs were computed with (see newsfeed.notebook)


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
MODULE_SECONDS = {"test_site.py": 90, "test_teaching.py": 70, "test_world.py": 35, "test_models.py": 30,
                  "test_scaling.py": 30, "test_features.py": 20, "test_serving.py": 20, "test_experiments.py": 15,
                  "test_monitoring.py": 15}


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
    """Say loudly when the browser tests could not run (tests/test_site.py skips them without a Chromium)."""
    for report in terminalreporter.stats.get("skipped", []):
        if "BROWSER TESTS NOT RUN" in str(report.longrepr):
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
            terminalreporter.write_sep("!", reason.removeprefix("Skipped: "), red=True, bold=True)
            return
