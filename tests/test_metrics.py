"""Ranking metrics against scikit-learn where they overlap, and on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, ndcg_score

from newsfeed.metrics import (
    ENGAGEMENT_WEIGHTS,
    calibration,
    engagement_score,
    expected_calibration_error,
    gini,
    map_at_k,
    ndcg_at_k,
    reaction_report,
    recall_at_k,
    top_share,
    true_engagement,
)
from newsfeed.world import World


def random_lists(seed: int, n_lists: int = 40, size: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_lists), size)
    scores = rng.random(n_lists * size)  # continuous: no ties
    relevance = rng.choice([0, 0, 0, 1, 5, 20], size=n_lists * size).astype(float)
    return groups, scores, relevance


@pytest.mark.parametrize("k", [1, 3, 10, 12])
def test_ndcg_matches_scikit_learn(k: int) -> None:
    groups, scores, relevance = random_lists(seed=k)
    ours = ndcg_at_k(groups, scores, relevance, k=k)
    rel, sc = relevance.reshape(40, 12), scores.reshape(40, 12)
    keep = rel.sum(axis=1) > 0
    theirs = np.mean([ndcg_score(rel[i:i + 1], sc[i:i + 1], k=k) for i in np.flatnonzero(keep)])
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_map_at_full_length_matches_average_precision() -> None:
    groups, scores, relevance = random_lists(seed=5)
    rel, sc = (relevance.reshape(40, 12) > 0).astype(int), scores.reshape(40, 12)
    keep = rel.sum(axis=1) > 0
    theirs = np.mean([average_precision_score(rel[i], sc[i]) for i in np.flatnonzero(keep)])
    assert map_at_k(groups, scores, relevance, k=12) == pytest.approx(theirs, abs=1e-12)


def test_hand_checked_cases() -> None:
    groups = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.9, 0.5, 0.1, 0.2, 0.8])
    relevance = np.array([0, 1, 0, 1, 0])
    assert recall_at_k(groups, scores, relevance, k=1) == 0.0
    assert recall_at_k(groups, scores, relevance, k=2) == 1.0
    assert map_at_k(groups, scores, relevance, k=2) == pytest.approx(0.5)
    assert ndcg_at_k(groups, scores, relevance, k=2) == pytest.approx(1 / np.log2(3))
    perfect = ndcg_at_k(groups, relevance.astype(float), relevance, k=3)
    assert perfect == 1.0


def test_lists_without_relevance_are_left_out_and_negative_gains_clip() -> None:
    groups = np.array([0, 0, 1, 1])
    relevance = np.array([1.0, 0.0, -20.0, 0.0])
    assert ndcg_at_k(groups, np.array([1.0, 0.0, 1.0, 0.0]), relevance) == 1.0


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match="k=0 is invalid"):
        ndcg_at_k(np.zeros(2), np.zeros(2), np.zeros(2), k=0)
    with pytest.raises(ValueError, match="one value per row"):
        recall_at_k(np.zeros(3), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="scores must be finite"):
        map_at_k(np.zeros(2), np.array([np.nan, 1.0]), np.zeros(2))


def test_engagement_score_weights_and_errors() -> None:
    frame = pd.DataFrame({"click": [1, 0], "like": [1, 0], "comment": [0, 0], "share": [0, 1], "hide": [0, 1]})
    assert engagement_score(frame).tolist() == [1 + 5, 20 - 20]
    assert ENGAGEMENT_WEIGHTS["share"] == 20
    probs = frame.add_prefix("p_") * 0.5
    assert engagement_score(probs, prefix="p_").tolist() == [3.0, 0.0]
    with pytest.raises(ValueError, match=r"missing columns \['hide'\]"):
        engagement_score(frame.drop(columns="hide"))


def test_inequality_measures() -> None:
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.r_[np.zeros(99), 1.0]) == pytest.approx(0.99)
    assert top_share(np.r_[np.ones(99), 101.0], 0.01) == pytest.approx(0.505)
    with pytest.raises(ValueError, match="non-negative"):
        gini(np.array([-1.0, 2.0]))
    with pytest.raises(ValueError, match="top_fraction=0 is invalid"):
        top_share(np.ones(3), 0)


def test_reaction_report_measures_calibration_as_predicted_over_observed() -> None:
    labels = pd.DataFrame({"click": [1, 0, 0, 0] * 25, "like": [1, 1, 0, 0] * 25})
    predicted = pd.DataFrame({"p_click": np.full(100, 0.5), "p_like": np.full(100, 0.25)})
    report = reaction_report(labels, predicted, reactions=("click", "like"))
    assert report.loc["click", "calibration"] == pytest.approx(2.0)  # predicts twice what happens
    assert report.loc["like", "calibration"] == pytest.approx(0.5)  # half
    assert report.loc["click", "ROC-AUC"] == pytest.approx(0.5)  # one score for every row ranks nothing


def test_reaction_report_refuses_labels_without_both_classes() -> None:
    predicted = pd.DataFrame({"p_like": np.full(50, 0.1)})
    with pytest.raises(ValueError, match="labels='0 positive like labels of 50' is invalid: labels accepts labels "
                                         "with at least one positive and one negative like"):
        reaction_report(pd.DataFrame({"like": np.zeros(50)}), predicted, reactions=("like",))
    with pytest.raises(ValueError, match="50 positive like labels of 50"):
        reaction_report(pd.DataFrame({"like": np.ones(50)}), predicted, reactions=("like",))


def test_true_engagement_is_the_weighted_score_at_the_top(small: World) -> None:
    rows = small.impressions.head(50)
    at_top = small.probabilities(rows["user_id"], rows["post_id"], 1, rows["timestamp"], rows["device"])
    np.testing.assert_allclose(true_engagement(small, rows), engagement_score(at_top, prefix="p_").to_numpy())
    assert true_engagement(small, rows.assign(position=9)).tolist() == true_engagement(small, rows).tolist()


def test_expected_calibration_error_sees_what_the_mean_ratio_averages_out() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.1, 0.3, 100_000)
    labels = (rng.random(len(truth)) < truth).astype(int)
    # Too high where likely, too low where unlikely: the means agree, the bins do not.
    stretched = 0.2 + 1.5 * (truth - 0.2)
    assert calibration(labels, stretched) == pytest.approx(1.0, abs=0.02)
    assert expected_calibration_error(labels, truth) < 0.01 < expected_calibration_error(labels, stretched)
    with pytest.raises(ValueError, match="bins=0 is invalid"):
        expected_calibration_error(labels, truth, bins=0)
    with pytest.raises(ValueError, match="probabilities='3 values for 100000 labels' is invalid"):
        expected_calibration_error(labels, truth[:3])
