"""Chapter 4's ladder: the hidden variables behind the oracle, the recent-engagement history, the rungs' networks
and the cached studies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from newsfeed import features, models
from newsfeed.models import ladder, rungs
from newsfeed.world import REACTIONS, World, WorldConfig, simulate
from newsfeed.world.outcomes import _LOGIT, _PASSIVE_SHIFT


@pytest.fixture(scope="module")
def world() -> World:
    return simulate(WorldConfig.at_scale("small", seed=2))


@pytest.fixture(scope="module")
def dataset(world: World) -> features.Dataset:
    return features.build_dataset(world)


def test_the_hidden_variables_are_what_the_true_probabilities_are_made_of(small: World) -> None:
    """At the top of the feed (examined for sure), a click's true log-odds are the outcome model's coefficients
    times the hidden terms, plus the user's traits: nothing the oracle uses is missing from them."""
    log = small.impressions.sample(500, random_state=0)
    args = (log["user_id"], log["post_id"], log["timestamp"], log["device"])
    hidden = small.hidden_variables(*args)
    terms = ["affinity", "closeness", "freshness", "quality", "clickbait", "media_preference"]
    logit = (_LOGIT["click"][0] + hidden[terms].to_numpy() @ np.array(_LOGIT["click"][1:])
             + hidden["passive"] * _PASSIVE_SHIFT["click"] + hidden["click_bias"])
    truth = small.probabilities(args[0], args[1], 1, args[2], args[3])["p_click"].to_numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), truth, rtol=1e-12)
    with pytest.raises(ValueError, match="^user_id="):
        small.hidden_variables([10**9], [0], log["timestamp"].iloc[:1])


def test_history_holds_only_engagements_from_before_the_session_most_recent_first(dataset: features.Dataset) -> None:
    table = dataset.table
    with_history = rungs.with_history(table, table, length=3)
    engaged = table[table[list(rungs.ENGAGEMENTS)].sum(axis=1) > 0]
    starts = table.groupby("session_id")["timestamp"].min()
    checked = 0
    for _, row in with_history.sample(300, random_state=1).iterrows():
        start = starts[row["session_id"]]
        before = engaged[(engaged["user_id"] == row["user_id"])
                         & (engaged["timestamp"].dt.floor("s") < start.floor("s"))]
        before = before.sort_values("timestamp", kind="stable")[::-1]
        expected = before["author_id"].to_numpy(float)[:3]
        got = row[[f"history_author_{i}" for i in range(3)]].to_numpy(float)
        np.testing.assert_array_equal(got[:len(expected)], expected)
        assert np.isnan(got[len(expected):]).all()
        checked += len(expected)
    assert checked > 100  # most sampled users had earlier engagements to compare
    with pytest.raises(ValueError, match="^length=0 is invalid"):
        rungs.with_history(table, table, length=0)


@pytest.mark.parametrize("architecture", ["cross", "hide-tower", "history"])
def test_each_rung_learns_and_serves_new_users(dataset: features.Dataset, architecture: str) -> None:
    table = rungs.with_history(dataset.table, dataset.table, length=4)
    train, test = table[dataset.split == "train"], table[dataset.split == "test"]
    config = rungs.RungConfig(hidden=(32,), embedding_dim=4, max_epochs=2, architecture=architecture)
    network = rungs.Rung(config, progress=None).fit(train)
    assert isinstance(network.network_, rungs.NETWORKS[architecture])
    first, last = network.learning_curve[0]["train_loss"], network.learning_curve[-1]["train_loss"]
    assert last < first
    unseen = test.assign(user_id=10**7)  # a new user: row 0 of the user embedding, and whatever history
    for rows in (test, unseen):
        predicted = network.predict(rows)
        assert predicted.shape == (len(rows), len(REACTIONS)) and np.isfinite(predicted.to_numpy()).all()


def test_the_history_rung_refuses_a_table_without_its_columns(dataset: features.Dataset) -> None:
    config = rungs.RungConfig(hidden=(8,), embedding_dim=4, max_epochs=1, architecture="history")
    with pytest.raises(ValueError, match="history columns of models.rungs.with_history"):
        rungs.Rung(config, progress=None).fit(dataset.part("train"))
    with pytest.raises(ValueError, match="^config='MultiTaskConfig' is invalid: config accepts a RungConfig"):
        rungs.Rung(models.MultiTaskConfig())


@pytest.mark.parametrize(("overrides", "accepts"), [
    ({"architecture": "deep"}, "architecture='deep' is invalid: architecture accepts one of 'cross', 'hide-tower'"),
    ({"numeric": ("position",)}, r"numeric=\('position',\) is invalid: numeric accepts None, or a tuple"),
    ({"numeric": ()}, r"numeric=\(\) is invalid")])
def test_a_rung_config_out_of_range_is_refused(overrides: dict, accepts: str) -> None:
    with pytest.raises(ValueError, match=f"^{accepts}"):
        rungs.Rung(rungs.RungConfig(**overrides))
    rung = rungs.RungConfig.of(models.MultiTaskConfig(seed=3), "history")
    assert (rung.seed, rung.architecture) == (3, "history")


def test_ablations_and_the_informed_ceiling_change_only_their_inputs(small: World) -> None:
    shipped = rungs.shipped_numeric()
    for group, names in rungs.FEATURE_GROUPS.items():
        left = rungs.ablated(group)
        assert set(left) == set(shipped) - set(names) and len(left) < len(shipped)
    with pytest.raises(ValueError, match="^group='age' is invalid"):
        rungs.ablated("age")
    log = small.impressions.head(50)
    informed = rungs.with_hidden(log, small, ["post"])
    assert list(informed.columns[len(log.columns):]) == list(rungs.hidden_columns(["post"]))
    with pytest.raises(ValueError, match="^groups="):
        rungs.with_hidden(log, small, ["posts"])


def test_the_ladder_measures_each_run_once_and_then_reads_it(tmp_path: Path, dataset: features.Dataset, world: World,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = models.MultiTaskConfig(hidden=(16,), embedding_dim=4, max_epochs=1)
    found = ladder.runs(shipped, [0, 1])
    counts = pd.Series([run.study for run in found]).value_counts()
    assert counts.to_dict() == {"rungs": 8, "informed": 5, "learning curve": 4, "ablation": 3}
    first = ladder.ladder(shipped, dataset, world, tmp_path, seeds=[0], studies=["rungs"], epochs=1)
    assert list(first.index.get_level_values("name")) == list(ladder.RUNGS)
    assert first["ndcg@10"].between(0, 1).all() and len(list(tmp_path.glob("ladder-*.json"))) == 4

    def no_training(*args: object) -> None:
        raise AssertionError("a measured run trained again")

    monkeypatch.setattr(models.MultiTask, "fit", no_training)
    again = ladder.ladder(shipped, dataset, world, tmp_path, seeds=[0], studies=["rungs"], epochs=1)
    pd.testing.assert_frame_equal(again, first)
    with pytest.raises(ValueError, match="^studies="):
        ladder.ladder(shipped, dataset, world, tmp_path, studies=["rung"])
    assert replace(shipped, seed=1) in [run.config for run in found]
