"""Test-wide settings: the same environment a notebook kernel gets from `make test`, even under plain `pytest`."""

import os

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


def pytest_terminal_summary(terminalreporter: object) -> None:
    """Say loudly when the browser tests could not run (tests/test_site.py skips them without a Chromium)."""
    for report in terminalreporter.stats.get("skipped", []):
        if "BROWSER TESTS NOT RUN" in str(report.longrepr):
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
            terminalreporter.write_sep("!", reason.removeprefix("Skipped: "), red=True, bold=True)
            return
