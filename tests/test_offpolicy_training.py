"""Training on partly observed labels: the relabeled network, the examination and arrival chances that divide its
labels, and the delays that make labels late."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from newsfeed import features, policies
from newsfeed.models import MultiTaskConfig
from newsfeed.offpolicy import delays, position
from newsfeed.offpolicy.relabeled import Relabeled, examination
from newsfeed.world import REACTIONS, World


def test_shuffled_top_records_the_rank_the_policy_intended_for_each_first_screen_post() -> None:
    candidates = pd.DataFrame({"session_id": np.repeat(np.arange(50), 6), "post_id": np.arange(300),
                               "quality": np.tile(np.arange(6.0), 50)})
    record: list[pd.DataFrame] = []
    policies.shuffled_top(lambda rows: rows["quality"].to_numpy(), 0.5, top=3, seed=1, record=record)(candidates)
    kept = pd.concat(record)
    quality = candidates.set_index("post_id").loc[kept["post_id"], "quality"].to_numpy()
    assert len(kept) == 150 and (kept["intended"].to_numpy() == 6 - quality).all()
    with pytest.raises(ValueError, match="^record=3 is invalid: record accepts None or a list"):
        policies.shuffled_top(lambda rows: rows["quality"].to_numpy(), 0.5, record=3)


def test_the_relabeled_network_divides_its_labels_and_can_leave_position_out(small: World) -> None:
    table = features.build_dataset(small).part("train")
    config = MultiTaskConfig(hidden=(8,), max_epochs=1, embedding_dim=4)
    plain = Relabeled(config, progress=None)
    plain.prepare(table)
    labels, _ = plain._labels(table)
    halved = Relabeled(config, observed=lambda rows: np.full((len(rows), len(REACTIONS)), 0.5), progress=None)
    halved.prepare(table)
    np.testing.assert_allclose(halved._labels(table)[0].numpy(), 2 * labels.numpy())
    inverse = examination(0.6, max_position=10)(table)
    expected = table["position"].clip(upper=10).to_numpy(float) ** -0.6
    np.testing.assert_allclose(inverse, np.repeat(expected[:, None], len(REACTIONS), axis=1))
    untowered = Relabeled(config, position_tower=False, progress=None).fit(table)
    assert not untowered.network_.position_bias.weight.abs().sum().item()  # frozen at its zero start
    towered = Relabeled(config, progress=None).fit(table)
    assert towered.network_.position_bias.weight.abs().sum().item() > 0
    with pytest.raises(ValueError, match="^observed=.* is invalid: observed accepts probabilities > 0 and <= 1"):
        Relabeled(config, observed=lambda rows: np.zeros((len(rows), len(REACTIONS))), progress=None).fit(table)
    with pytest.raises(ValueError, match="^observed=2 is invalid: observed accepts None, or a function"):
        Relabeled(config, observed=2)


def test_delays_make_late_reactions_negative_until_they_arrive_and_their_curve_is_recovered() -> None:
    rng = np.random.default_rng(0)
    cutoff = pd.Timestamp("2026-01-15")
    log = pd.DataFrame({"timestamp": cutoff - pd.to_timedelta(rng.uniform(0, 14, 40_000), unit="D"),
                        **{r: (rng.random(40_000) < 0.3).astype(np.int8) for r in REACTIONS}})
    drawn = delays.arrival_delays(log, seed=1)
    for reaction, (median, _) in delays.DELAYS.items():
        happened = log[reaction] == 1
        assert drawn.loc[~happened, reaction].isna().all() and drawn.loc[happened, reaction].notna().all()
        assert np.median(drawn.loc[happened, reaction]) == pytest.approx(median, rel=0.05)
    known = delays.known_at(log, drawn, cutoff)
    age = (cutoff - log["timestamp"]).dt.total_seconds()
    assert (known["share"] == ((log["share"] == 1) & (drawn["share"] <= age))).all()
    assert known["share"].sum() < log["share"].sum() and (known["click"] <= log["click"]).all()
    fitted = delays.fit_delays(log, drawn, cutoff)
    np.testing.assert_allclose(fitted["median seconds"], [delays.DELAYS[r][0] for r in fitted.index], rtol=0.1)
    chance = delays.arrival_chance(fitted, cutoff)(log)
    assert chance.shape == (len(log), len(REACTIONS)) and chance.min() == pytest.approx(0.1)
    share = list(REACTIONS).index("share")
    oldest, youngest = age.idxmax(), age.idxmin()
    assert chance[oldest, share] > 0.95 and chance[youngest, share] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="^delays=.* is invalid: delays accepts a \\(median seconds > 0"):
        delays.arrival_delays(log, delays={"click": (1.0, 1.0)})
    with pytest.raises(ValueError, match="^floor=0 is invalid: floor accepts a number > 0 and <= 1"):
        delays.arrival_chance(fitted, cutoff, floor=0)


def test_label_bias_reads_each_way_against_its_twin_of_the_same_seed() -> None:
    rows = {}
    for way in delays.WAYS:
        for seed in (0, 1):
            waited = delays.WAYS[way][0] == "waited"
            rows[(way, seed)] = {**{f"predicted {r}": 0.1 * (1 + seed) for r in REACTIONS},
                                 "newest row, hours before the cut-off": 24.0 if waited else 0.0}
    study = pd.DataFrame(rows).T
    study.loc[("late labels as negatives", slice(None)), "predicted share"] *= 0.8
    bias = delays.label_bias(study)
    assert bias.loc["late labels as negatives", "share"] == pytest.approx(0.8)
    assert bias.loc["relabeled by the arrival curve", "share"] == pytest.approx(1.0)
    assert bias.loc["attribution window", "newest row, hours"] == 24.0


def test_lift_shares_put_the_legacy_ranker_at_zero_and_the_oracle_at_one() -> None:
    study = pd.DataFrame({"engagement per session": [9.0, 9.5, 10.0]})
    np.testing.assert_allclose(position.lift_shares(study, legacy=9.0, oracle=10.0), [0.0, 0.5, 1.0])
