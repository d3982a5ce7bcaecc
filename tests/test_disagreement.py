"""When offline and online disagree: the within-session ROC-AUC, and what served feeds truly earn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from newsfeed import disagreement, experiments, metrics
from newsfeed.world import REACTIONS, World, legacy_ranker


def test_within_list_auc_is_the_mean_of_each_lists_roc_auc() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 40, 3000)
    labels = (rng.random(3000) < 0.3).astype(int)
    scores = np.round(rng.random(3000) + 0.6 * labels, 1)  # rounded: ties count a half, as in sklearn
    both = [g for g in np.unique(groups) if 0 < labels[groups == g].sum() < (groups == g).sum()]
    expected = np.mean([roc_auc_score(labels[groups == g], scores[groups == g]) for g in both])
    assert metrics.within_list_auc(groups, labels, scores) == pytest.approx(expected, abs=1e-12)
    # A score that only tells the lists apart is worth nothing within them, however it pools.
    by_list = pd.Series(labels).groupby(groups).transform("mean").to_numpy()
    assert roc_auc_score(labels, by_list) > 0.55
    assert metrics.within_list_auc(groups, labels, by_list) == pytest.approx(0.5)
    assert np.isnan(metrics.within_list_auc(np.zeros(3), np.ones(3, dtype=int), np.arange(3.0)))


@pytest.mark.parametrize(("labels", "scores", "argument"), [
    (np.array([0, 2, 1]), np.arange(3.0), "labels"),
    (np.array([0, 1]), np.arange(3.0), "labels"),
    (np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3]), "scores"),
])
def test_within_list_auc_refuses_bad_input(labels: np.ndarray, scores: np.ndarray, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        metrics.within_list_auc(np.zeros(3), labels, scores)


def test_served_values_measure_each_ranker_and_read_the_kept_study(small: World, tmp_path: Path) -> None:
    _, history, sessions = experiments.test_window(small, 20, 2)
    made: list[tuple[str, int]] = []

    def maker(name: str, seed: int):
        def make():
            made.append((name, seed))
            return legacy_ranker(seed) if name == "legacy" else lambda rows: -rows["post_id"].to_numpy(float)
        return make

    rankers = {(name, seed): maker(name, seed) for name in ("legacy", "oldest first") for seed in (0, 1)}
    study = disagreement.served_values(small, rankers, sessions, history, seed=3, folder=tmp_path)
    assert len(study) == 4 and made == list(rankers)
    assert list(study[["model", "training seed"]].itertuples(index=False, name=None)) == list(rankers)
    weighted = sum(w * study[r] for r, w in metrics.ENGAGEMENT_WEIGHTS.items())
    assert np.allclose(study["engagement"], weighted)  # per session, the score of the expected reactions
    assert (study[list(REACTIONS)] > 0).all().all() and (study["impressions"] > 1).all()
    # Kept: the same study is read back without making (training, loading) any ranker.
    again = disagreement.served_values(small, rankers, sessions, history, seed=3, folder=tmp_path)
    assert len(made) == 4
    pd.testing.assert_frame_equal(again, study)
    # Each rollout is one served_reactions: the same policy, the same seed, the same feeds.
    alone = disagreement.served_reactions(small, legacy_ranker(1), sessions, history, 3)
    assert alone == pytest.approx(study.iloc[1].drop(["model", "training seed"]).to_dict())


@pytest.mark.parametrize(("rankers", "seed", "argument"), [
    ({}, 0, "rankers"),
    ({("legacy", 0): "not callable"}, 0, "rankers"),
    ({"legacy": lambda: legacy_ranker(0)}, 0, "rankers"),
    ({("legacy", 0): lambda: legacy_ranker(0)}, -1, "seed"),
])
def test_served_values_refuse_bad_input(small: World, rankers: dict, seed: int, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        disagreement.served_values(small, rankers, small.sessions.head(0), small.impressions.head(0), seed)
