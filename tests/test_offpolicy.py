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


def bandit_log(rows: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """A logged bandit with known truth: five actions chosen uniformly, Bernoulli rewards of known means, and a
    new policy that prefers the best action."""
    rng = np.random.default_rng(seed)
    means = np.array([0.05, 0.10, 0.15, 0.20, 0.30])
    new_policy = np.array([0.05, 0.05, 0.10, 0.20, 0.60])
    actions = rng.integers(0, 5, size=rows)
    rewards = (rng.random(rows) < means[actions]).astype(float)
    return means, new_policy, actions, rewards


def test_off_policy_estimates_find_the_new_policys_true_value() -> None:
    means, new_policy, actions, rewards = bandit_log(40_000)
    truth = float(new_policy @ means)
    logging = np.full(len(actions), 0.2)
    wrong_model = np.full(5, rewards.mean())  # a reward model that knows nothing of the actions
    found = offpolicy.estimates(rewards, new_policy[actions], logging, wrong_model[actions],
                                np.full(len(actions), new_policy @ wrong_model))
    for name in ("IPS", "self-normalized IPS", "doubly robust"):
        assert abs(found.at[name, "estimate"] - truth) < 3 * found.at[name, "standard error"], name
    assert abs(found.at["direct method", "estimate"] - truth) > 0.05  # a wrong model misleads the direct method
    # With a right reward model and rewards without noise, doubly robust is exact, where IPS still varies with
    # which actions happened to be logged.
    exact = offpolicy.estimates(means[actions], new_policy[actions], logging, means[actions],
                                np.full(len(actions), truth))
    assert exact.at["doubly robust", "estimate"] == pytest.approx(truth)
    assert exact.at["doubly robust", "standard error"] < 1e-12 < exact.at["IPS", "standard error"]
    clipped = offpolicy.estimates(rewards, new_policy[actions], logging, wrong_model[actions],
                                  np.full(len(actions), new_policy @ wrong_model), clip=1.0)
    assert clipped.at["IPS", "standard error"] < found.at["IPS", "standard error"]
    assert clipped.at["IPS", "estimate"] < truth - 0.02  # capped weights under-count the favoured action
    with pytest.raises(ValueError, match="^logging='smallest 0.0' is invalid: logging accepts probabilities > 0"):
        offpolicy.estimates(rewards, new_policy[actions], logging * 0, rewards, rewards)
    with pytest.raises(ValueError, match=r"^target='\(3,\) values' is invalid: target accepts one number per"):
        offpolicy.estimates(rewards, [0.1, 0.2, 0.3], logging, rewards, rewards)


def test_thompson_sampling_shows_the_likeliest_items_first() -> None:
    alpha, beta = np.array([50.0, 5.0, 5.0, 5.0]), np.array([50.0, 95.0, 95.0, 95.0])
    shown = offpolicy.thompson_distribution(alpha, beta, positions=2, samples=5_000)
    assert shown.shape == (4, 2)
    np.testing.assert_allclose(shown.sum(axis=0), 1.0)
    assert shown[0, 0] > 0.99 and shown[0, 1] < 0.01  # a rate near 0.5 against rates near 0.05
    np.testing.assert_allclose(shown[1:, 1], 1 / 3, atol=0.03)
    with pytest.raises(ValueError, match="^positions=5 is invalid: positions accepts an integer from 1 to the 4"):
        offpolicy.thompson_distribution(alpha, beta, positions=5)


def test_the_open_bandit_sample_estimates_thompson_samplings_click_rate_from_random_logs() -> None:
    """On real logs: Thompson sampling's click rate estimated by IPS from the uniform-random policy's logs (with
    the production prior's action distribution) agrees, within the estimates' errors, with its own logged rate."""
    found = offpolicy.thompson_from_random_logs()
    logged = found.loc["logged by Thompson sampling"]
    for name in ("IPS", "doubly robust"):
        spread = np.hypot(found.at[name, "standard error"], logged["standard error"])
        assert abs(found.at[name, "estimate"] - logged["estimate"]) < 2 * spread
    assert found.at["IPS", "standard error"] > 2 * logged["standard error"]  # few random rows show its favourites
    with pytest.raises(ValueError, match="^policy='ts' is invalid: policy accepts 'random' or 'bts'"):
        offpolicy.open_bandit("ts")
    with pytest.raises(ValueError, match="^prior_rows=0 is invalid: prior_rows accepts a number > 0"):
        offpolicy.thompson_from_random_logs(prior_rows=0)


def test_the_examination_exponent_of_a_power_law_curve_is_found() -> None:
    positions = pd.Index(range(1, 6), name="position")
    curve = pd.DataFrame({"relative to the top": positions.to_numpy() ** -0.6, "standard error": 0.05},
                         index=positions)
    assert offpolicy.examination_exponent(curve) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="^curve=.* is invalid: curve accepts two or more positions"):
        offpolicy.examination_exponent(curve.iloc[:1])
