"""Logs with known randomness: the randomized share of sessions, the shuffled top slots, and the position curve
they reveal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from newsfeed import offpolicy, policies
from newsfeed.world import World


def test_the_randomized_share_is_a_stable_choice_of_sessions() -> None:
    ids = np.arange(20_000)
    chosen = policies.randomized_sessions(ids, 0.2, seed=3)
    assert chosen.mean() == pytest.approx(0.2, abs=0.01)
    np.testing.assert_array_equal(policies.randomized_sessions(ids[::-1], 0.2, seed=3), chosen[::-1])
    assert (policies.randomized_sessions(ids, 0.2, seed=4) != chosen).any()
    assert not policies.randomized_sessions(ids, 0.0).any() and policies.randomized_sessions(ids, 1.0).all()
    with pytest.raises(ValueError, match="^share=1.5 is invalid: share accepts a number from 0 to 1"):
        policies.randomized_sessions(ids, 1.5)


def test_shuffled_sessions_show_the_policys_top_posts_in_a_uniformly_random_order() -> None:
    sessions = np.repeat(np.arange(4_000), 8)
    candidates = pd.DataFrame({"session_id": sessions, "quality": np.tile(np.arange(8.0), 4_000)})
    policy = policies.shuffled_top(lambda rows: rows["quality"].to_numpy(), share=0.5, top=3, seed=1)
    scores = policy(candidates)
    rank = (pd.Series(-scores).groupby(sessions).rank(method="first").to_numpy() - 1).astype(int)
    marked = policies.randomized_sessions(sessions, 0.5, seed=1)
    plain = rank[~marked].reshape(-1, 8)
    np.testing.assert_array_equal(plain, np.tile(np.arange(7, -1, -1), (len(plain), 1)))  # the policy's order
    shuffled = rank[marked].reshape(-1, 8)
    np.testing.assert_array_equal(np.sort(shuffled[:, 5:], axis=1), np.tile([0, 1, 2], (len(shuffled), 1)))
    np.testing.assert_array_equal(shuffled[:, :5], np.tile(np.arange(7, 2, -1), (len(shuffled), 1)))
    best_at = np.bincount(shuffled[:, 7], minlength=3) / len(shuffled)  # where the best post landed
    np.testing.assert_allclose(best_at, 1 / 3, atol=0.03)
    with pytest.raises(ValueError, match="^top=1 is invalid: top accepts an integer >= 2"):
        policies.shuffled_top(policy, 0.5, top=1)


def test_the_position_curve_recovers_a_known_examination_curve() -> None:
    rng = np.random.default_rng(0)
    sessions, top = 20_000, 4
    examination = np.arange(1, top + 1) ** -0.6
    appeal = rng.uniform(0.1, 0.6, size=(sessions, top))  # exchangeable posts: any may land at any position
    clicks = rng.random((sessions, top)) < appeal * examination
    log = pd.DataFrame({"session_id": np.repeat(np.arange(sessions), top),
                        "position": np.tile(np.arange(1, top + 1), sessions), "click": clicks.ravel().astype(int)})
    log = log[~((log["session_id"] % 10 == 0) & (log["position"] == top))]  # short sessions are left out
    curve = offpolicy.position_curve(log, np.ones(len(log), dtype=bool), top)
    assert curve["impressions"].tolist() == [sessions - sessions // 10] * top
    error = (curve["relative to the top"] - examination) / curve["standard error"].where(lambda s: s > 0, 1)
    assert (error.abs() < 3).all() and curve["relative to the top"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="^randomized=.* is invalid: randomized accepts one boolean per impression"):
        offpolicy.position_curve(log, [True], top)
    with pytest.raises(ValueError, match="^impressions=.* is invalid: impressions accepts logs with randomized"):
        offpolicy.position_curve(log, np.zeros(len(log), dtype=bool), top)


def test_a_randomized_rollout_reveals_the_worlds_examination_curve(small: World) -> None:
    """On the world, with expected clicks (the true probabilities of what was shown) so that only which post
    landed where is random: the curve is the world's own, position**-position_bias, within a few hundredths."""
    sessions = small.sessions[small.sessions["started_at"] >= small.sessions["started_at"].quantile(0.75)]
    logged = small.rollout(policies.shuffled_top(policies.legacy_ranker(0), 1.0, top=3, seed=0), sessions, seed=0,
                           earlier_impressions=small.impressions[small.impressions["timestamp"] < sessions[
                               "started_at"].min()])
    expected = logged.impressions.drop(columns="click").merge(
        logged.probabilities[["impression_id", "p_click"]].rename(columns={"p_click": "click"}), on="impression_id")
    curve = offpolicy.position_curve(expected, np.ones(len(expected), dtype=bool), top=3)
    truth = np.arange(1, 4) ** -small.config.position_bias
    assert curve["impressions"].min() > 200
    np.testing.assert_allclose(curve["relative to the top"], truth, atol=0.06)
