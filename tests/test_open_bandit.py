"""The Open Bandit Dataset's small sample in ``data/open_bandit``: the files are the ones its README names, and
their rows are what an off-policy estimate needs (propensities of the logged choices, clicks, positions)."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest

FOLDER = Path(__file__).resolve().parent.parent / "data" / "open_bandit"


def documented_digests() -> dict[str, str]:
    table = re.findall(r"\| `(\w+\.csv\.gz)` \| `([0-9a-f]{64})` \|", (FOLDER / "README.md").read_text())
    return dict(table)


def test_every_file_is_byte_identical_to_the_one_its_readme_names() -> None:
    digests = documented_digests()
    assert sorted(digests) == sorted(path.name for path in FOLDER.glob("*.csv.gz")) and len(digests) == 4
    for name, digest in digests.items():
        assert hashlib.sha256(gzip.decompress((FOLDER / name).read_bytes())).hexdigest() == digest, name


@pytest.mark.parametrize("policy", ["random", "bts"])
def test_each_policys_log_holds_clicks_positions_and_the_propensity_of_each_choice(policy: str) -> None:
    log = pd.read_csv(FOLDER / f"{policy}_all.csv.gz", index_col=0)
    items = pd.read_csv(FOLDER / f"{policy}_item_context.csv.gz", index_col=0)
    assert len(log) == 10_000 and len(items) == 80
    assert set(log["item_id"]) <= set(items["item_id"]) and set(log["position"]) == {1, 2, 3}
    assert set(log["click"]) == {0, 1} and 0 < log["click"].mean() < 0.05
    assert log["propensity_score"].between(0, 1, inclusive="right").all()
    if policy == "random":  # uniform over the 80 items: every logged choice had probability 1/80
        assert (log["propensity_score"] == 1 / 80).all()
    else:  # Thompson sampling favours some items: its propensities vary
        assert log["propensity_score"].nunique() > 100
