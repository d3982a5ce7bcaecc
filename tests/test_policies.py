"""Policies: oracles rank by the true probabilities, a trained ranker serves at the top of the feed; the feed
report counts what a feed promoted."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from newsfeed import features, models
from newsfeed.metrics import engagement_score, feed_report
from newsfeed.policies import oracle_policy, ranking_policy
from newsfeed.world import Rollout, World, legacy_ranker


@pytest.fixture(scope="module")
def last_days(small: World) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sessions of the last three days (a few hundred) and the impressions logged before them."""
    cut = small.config.start_time + pd.Timedelta(days=small.config.n_days - 3)
    sessions = small.sessions[small.sessions["started_at"] >= cut]
    history = small.impressions[~small.impressions["session_id"].isin(sessions["session_id"])]
    return sessions, history


def candidates_of(world: World, n: int = 50) -> pd.DataFrame:
    shown = world.impressions.head(n)
    return pd.DataFrame({"user_id": shown["user_id"], "post_id": shown["post_id"],
                         "requested_at": shown["timestamp"], "device": shown["device"]})


def test_oracle_scores_are_the_objective_of_the_true_probabilities_at_the_top(small: World) -> None:
    candidates = candidates_of(small)
    scores = oracle_policy(small, lambda p: p["p_like"])(candidates)
    expected = small.probabilities(candidates["user_id"], candidates["post_id"], 1, candidates["requested_at"],
                                   candidates["device"])["p_like"]
    np.testing.assert_allclose(scores, expected.to_numpy())


def test_oracle_rejects_a_bad_objective(small: World) -> None:
    with pytest.raises(ValueError, match="objective"):
        oracle_policy(small, "p_click")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one score per row"):
        oracle_policy(small, lambda p: p["p_click"].to_numpy()[:1])(candidates_of(small))


def test_oracles_promote_what_they_rank_by(small: World, last_days: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Each oracle beats the others on its own objective (the likes and engagement oracles tie on likes, since
    an oracle is greedy per session, not optimal over a week), and ranking by clicks promotes clickbait."""
    sessions, history = last_days
    policies = {"legacy": legacy_ranker(0), "clicks": oracle_policy(small, lambda p: p["p_click"]),
                "likes": oracle_policy(small, lambda p: p["p_like"]),
                "engagement": oracle_policy(small, partial(engagement_score, prefix="p_"))}
    served = {name: small.rollout(policy, sessions, seed=0, earlier_impressions=history)
              for name, policy in policies.items()}
    reports = pd.DataFrame({name: feed_report(small, rollout) for name, rollout in served.items()}).T
    assert reports["clicks"].idxmax() == "clicks"
    assert reports.loc["likes", "likes"] > reports.loc[["legacy", "clicks"], "likes"].max()
    assert reports.loc["engagement", "engagement"] > reports.loc[["legacy", "clicks"], "engagement"].max()
    assert reports.loc["clicks", "clickbait_at_top"] > 2 * reports.loc["engagement", "clickbait_at_top"]
    assert reports.loc["clicks", "hides"] > reports.loc["engagement", "hides"]


def hand_made_rollout() -> Rollout:
    """Two sessions: one shows posts 0, 1, 2; the other shows post 3."""
    impressions = pd.DataFrame({
        "impression_id": [0, 1, 2, 3], "session_id": [7, 7, 7, 9], "post_id": [0, 1, 2, 3],
        "position": [1, 2, 3, 1], "click": [1, 0, 0, 1], "like": [1, 0, 0, 0], "comment": [0, 0, 0, 0],
        "share": [0, 0, 1, 0], "hide": [0, 0, 0, 1], "dwell_seconds": [10.0, 1.0, 5.0, 2.0]})
    probabilities = pd.DataFrame({
        "impression_id": [3, 2, 1, 0],  # a different row order: the report must join on the id
        "p_click": [0.4, 0.3, 0.2, 0.1], "p_like": [0.0, 0.1, 0.1, 0.2], "p_comment": [0.0, 0.0, 0.0, 0.0],
        "p_share": [0.0, 0.0, 0.0, 0.1], "p_hide": [0.1, 0.0, 0.0, 0.0], "expected_dwell": [1.0, 2.0, 3.0, 4.0]})
    return Rollout(impressions, probabilities)


def test_feed_report_counts_per_session(small: World) -> None:
    rollout = hand_made_rollout()
    observed = feed_report(small, rollout, top_positions=1, outcomes="observed")
    assert observed["sessions"] == 2
    assert observed["clicks"] == pytest.approx(1.0)
    assert observed["shares"] == pytest.approx(0.5)
    assert observed["dwell_seconds"] == pytest.approx(9.0)
    assert observed["engagement"] == pytest.approx((1 + 5 + 20 + 1 - 20) / 2)
    expected = feed_report(small, rollout, top_positions=1)
    assert expected["clicks"] == pytest.approx(0.5)
    assert expected["likes"] == pytest.approx(0.2)
    assert expected["hides"] == pytest.approx(0.05)
    assert expected["dwell_seconds"] == pytest.approx(5.0)
    top_posts = np.array([0, 3])
    truth = small.truth
    assert expected["quality_at_top"] == pytest.approx(truth.post_quality[top_posts].mean())
    assert expected["clickbait_at_top"] == pytest.approx(np.mean(truth.post_clickbait[top_posts] > 0.5))
    assert feed_report(small, rollout, top_positions=1, clickbait_threshold=0.0)["clickbait_at_top"] == \
        pytest.approx(np.mean(truth.post_clickbait[top_posts] > 0.0))


@pytest.mark.parametrize("arguments, name", [({"top_positions": 0}, "top_positions"),
                                              ({"clickbait_threshold": 1.5}, "clickbait_threshold"),
                                              ({"outcomes": "sampled"}, "outcomes")])
def test_feed_report_rejects_bad_arguments(small: World, arguments: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        feed_report(small, hand_made_rollout(), **arguments)


def test_feed_report_rejects_an_empty_rollout(small: World) -> None:
    empty = Rollout(hand_made_rollout().impressions.head(0), hand_made_rollout().probabilities.head(0))
    with pytest.raises(ValueError, match="no impressions"):
        feed_report(small, empty)


class _RecordingRanker(models.Ranker):
    """Predicts one constant per reaction and remembers the positions it was asked to score."""

    name = "recording"

    def __init__(self) -> None:
        self.positions: list[int] = []

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> _RecordingRanker:
        return self

    def score(self, table: pd.DataFrame) -> np.ndarray:
        self.positions.extend(table["position"].tolist())  # as the policy built the rows
        return super().score(table)

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        self.positions.extend(table["position"].tolist())  # as the ranker's serving view passed them on
        return pd.DataFrame({c: np.full(len(table), 0.1) for c in models.PROBABILITY_COLUMNS}, index=table.index)


def test_ranking_policy_scores_every_candidate_at_the_top(small: World) -> None:
    dataset = features.build_dataset(small)
    ranker = _RecordingRanker()
    policy = ranking_policy(ranker, dataset.aggregates(dataset.log), small.edges, dataset)
    week = small.sessions[small.sessions["started_at"] >= dataset.serve_at].head(30)
    small.rollout(policy, week, seed=0, earlier_impressions=dataset.log)
    assert ranker.positions and set(ranker.positions) == {1}
