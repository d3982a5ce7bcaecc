"""Deliberate bugs the unit tests must catch: each mutation is applied to the package, the named tests run, and
the check fails if they still pass. Run it after changing a test or the code it guards:

    .venv/bin/python tests/mutation_check.py

It restores every file it touches, also when interrupted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (what the bug is, file, original text, mutated text, the tests that must fail)
MUTATIONS: list[tuple[str, str, str, str, str]] = [
    ("calibration inverted", "newsfeed/metrics.py", '"calibration": p.mean() / y.mean()',
     '"calibration": y.mean() / p.mean()', "tests/test_metrics.py"),
    ("serving view at position 5 (the ranking policy and Ranker.score both use it)",
     "newsfeed/models/ranker.py", "return table.assign(position=1)",
     "return table.assign(position=5)",
     "tests/test_policies.py::test_ranking_policy_scores_every_candidate_at_the_top"),
    ("re-ranking freshness base", "newsfeed/serving/rerank.py", "score *= 0.5 **", "score *= 0.6 **",
     "tests/test_serving.py::test_rerank_freshness_halves_a_score_every_half_life"),
    ("weekday offset", "newsfeed/features/table.py", "_WEEKDAYS[(day + 3) % 7]", "_WEEKDAYS[(day + 4) % 7]",
     "tests/test_features.py::test_time_features_read_the_clock_of_the_request"),
]


def main() -> int:
    survived = []
    for name, relative, original, mutated, tests in MUTATIONS:
        path = ROOT / relative
        source = path.read_text()
        if source.count(original) != 1:
            print(f"{name}: the text to mutate is not in {relative} exactly once; update this check")
            return 2
        try:
            path.write_text(source.replace(original, mutated))
            command = [sys.executable, "-m", "pytest", "-q", "-x", "-o", "addopts=", "-p", "no:cacheprovider"]
            run = subprocess.run([*command, *tests.split()], cwd=ROOT, capture_output=True, text=True)
        finally:
            path.write_text(source)
        caught = run.returncode != 0
        print(f"{'caught  ' if caught else 'SURVIVED'} {name} ({relative}) by {tests}")
        if not caught:
            survived.append(name)
    print(f"{len(MUTATIONS) - len(survived)} of {len(MUTATIONS)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
