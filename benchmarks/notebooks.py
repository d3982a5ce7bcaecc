"""How long does each chapter take to execute? Checks the book's budgets: each chapter <= 90 s, all <= 8 min.

    python benchmarks/notebooks.py            # a table, one row per chapter
    python benchmarks/notebooks.py --json     # {"chapters": {NAME: seconds}, "total_seconds": ..., ...}
    python benchmarks/notebooks.py --chapters 00_framework   # only the chapters named (a quick run)

Chapters run in order in fresh kernels, as `make test` runs them (a chapter may reuse what an earlier one cached
in data/: the world, the shipped network). Nothing is written back to the notebooks. ``--chapters`` runs only the
notebooks named (by name, file name or path; any notebook in chapters/, the appendix too), in the order given;
the budgets are then checked over those alone.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

CHAPTER_BUDGET_SECONDS = 90.0
#: All chapters one after another. `make test` runs them on its two workers, so 8 minutes here is about 4 of
#: the 7 minutes the test command may take on two cores, leaving the rest to the unit and browser tests.
BOOK_BUDGET_SECONDS = 480.0
ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"


def execute(path: Path) -> float:
    """Seconds to execute one notebook top to bottom in a fresh kernel."""
    import nbformat  # here, not above: a mistyped option is answered at once
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--chapters", nargs="+", metavar="NAME",
                        help="run only these notebooks, e.g. 00_framework (default: every numbered chapter)")
    args = parser.parse_args()
    available = {path.stem: path for path in sorted(CHAPTERS.glob("*.ipynb"))}
    if args.chapters is None:
        paths = sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))
    else:
        unknown = [name for name in args.chapters if Path(name).stem not in available]
        if unknown:
            parser.error(f"--chapters={' '.join(unknown)} is invalid: --chapters accepts notebooks of chapters/: "
                         f"{', '.join(available)}")
        paths = [available[Path(name).stem] for name in args.chapters]
    for name, value in {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                        "MKL_NUM_THREADS": "1"}.items():
        os.environ.setdefault(name, value)
    seconds = {path.stem: execute(path) for path in paths}
    total = sum(seconds.values())
    over = [name for name, s in seconds.items() if s > CHAPTER_BUDGET_SECONDS]
    report = {"chapters": seconds, "total_seconds": total, "chapter_budget_seconds": CHAPTER_BUDGET_SECONDS,
              "book_budget_seconds": BOOK_BUDGET_SECONDS, "chapters_over_budget": over,
              "within_budgets": not over and total <= BOOK_BUDGET_SECONDS, "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, s in seconds.items():
        flag = "  over budget" if s > CHAPTER_BUDGET_SECONDS else ""
        print(f"{name:<28} {s:6.1f} s{flag}")
    print(f"{'total':<28} {total:6.1f} s  (budget {BOOK_BUDGET_SECONDS:.0f} s; {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
