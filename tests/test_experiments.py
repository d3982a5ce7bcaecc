"""Simulated A/B tests: hash randomization, power analysis, one shared rollout, Welch comparisons, SRM."""

from __future__ import annotations

import hashlib
import math
from functools import partial

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from newsfeed.experiments import (
    PER_USER_METRICS,
    ABResult,
    assign_arms,
    compare_all,
    compare_arms,
    minimum_detectable_lift,
    run_ab_test,
    sample_ratio_mismatch,
    sample_size_per_arm,
)
from newsfeed.metrics import engagement_score
from newsfeed.policies import epsilon_greedy, oracle_policy, split_policy
from newsfeed.world import World, legacy_ranker


@pytest.fixture(scope="module")
def last_days(small: World) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sessions of the last three days (a few hundred, by about 260 users) and the impressions before them."""
    cut = small.config.start_time + pd.Timedelta(days=small.config.n_days - 3)
    sessions = small.sessions[small.sessions["started_at"] >= cut]
    history = small.impressions[small.impressions["timestamp"] < cut]
    return sessions, history


@pytest.fixture(scope="module")
def aa_test(small: World, last_days: tuple[pd.DataFrame, pd.DataFrame]) -> ABResult:
    sessions, history = last_days
    return run_ab_test(small, legacy_ranker(0), legacy_ranker(0), sessions, seed=0, earlier_impressions=history)


@pytest.fixture(scope="module")
def ab_test(small: World, last_days: tuple[pd.DataFrame, pd.DataFrame]) -> ABResult:
    sessions, history = last_days
    oracle = oracle_policy(small, partial(engagement_score, prefix="p_"))
    return run_ab_test(small, legacy_ranker(0), oracle, sessions, seed=0, earlier_impressions=history)


# ---- assignment ----------------------------------------------------------------------------------------
def test_assignment_is_a_hash_of_salt_and_user() -> None:
    users = np.arange(10_000)
    arms = assign_arms(users)
    assert arms.index.tolist() == users.tolist()
    assert set(arms) == {"control", "treatment"}
    pd.testing.assert_series_equal(arms, assign_arms(users.tolist()))
    # The same user gets the same arm whatever the id's type or its neighbours.
    assert assign_arms([np.int64(7)]).iloc[0] == assign_arms([3, 7]).loc[7]
    # Pinned: SHA-256 of "feed-ab-1:<id>" gives the same split on every machine and Python process.
    bucket = int.from_bytes(hashlib.sha256(b"feed-ab-1:0").digest()[:8], "big") / 2**64
    assert (assign_arms([0]).iloc[0] == "treatment") == (bucket < 0.5)
    assert assign_arms(range(6)).tolist() == ["treatment", "control", "treatment", "control", "control", "treatment"]


def test_assignment_share_salt_and_ramp_up() -> None:
    users = np.arange(10_000)
    half = assign_arms(users) == "treatment"
    fifth = assign_arms(users, treatment_share=0.2) == "treatment"
    assert half.mean() == pytest.approx(0.5, abs=0.02)
    assert fifth.mean() == pytest.approx(0.2, abs=0.02)
    assert not (fifth & ~half).any()  # raising the share only adds treated users
    reshuffled = assign_arms(users, salt="feed-ab-2") == "treatment"
    assert (reshuffled == half).mean() == pytest.approx(0.5, abs=0.03)
    assert set(assign_arms(users[:50], treatment_share=0.0)) == {"control"}
    assert set(assign_arms(users[:50], treatment_share=1.0)) == {"treatment"}


# ---- power analysis ------------------------------------------------------------------------------------
def test_sample_size_matches_the_hand_calculation() -> None:
    # n = 2 (z_0.975 + z_0.8)^2 sigma^2 / delta^2 = 2 * (1.959964 + 0.841621)^2 * 20^2 / (0.05 * 10)^2 = 25116.4
    assert sample_size_per_arm(10.0, 20.0, 0.05) == 25_117
    assert sample_size_per_arm(10.0, 20.0, -0.05) == 25_117
    assert sample_size_per_arm(10.0, 20.0, 0.10) == math.ceil(25_116.4 / 4)
    assert sample_size_per_arm(10.0, 20.0, 0.05, power=0.9) > 25_117


@pytest.mark.parametrize("lift", [0.01, 0.05, 0.3])
def test_minimum_detectable_lift_inverts_the_sample_size(lift: float) -> None:
    n = sample_size_per_arm(3.0, 7.0, lift, alpha=0.01, power=0.9)
    assert minimum_detectable_lift(3.0, 7.0, n, alpha=0.01, power=0.9) <= lift
    assert minimum_detectable_lift(3.0, 7.0, n - 1, alpha=0.01, power=0.9) > lift


# ---- running a test ------------------------------------------------------------------------------------
def test_each_policy_scores_only_its_own_rows_in_order() -> None:
    seen: dict[str, pd.DataFrame] = {}

    def recorder(name: str, offset: float):
        def score(candidates: pd.DataFrame) -> np.ndarray:
            seen[name] = candidates
            return offset + candidates["post_id"].to_numpy(dtype=float)
        return score

    candidates = pd.DataFrame({"user_id": [1, 2, 1, 3, 2], "post_id": [10, 11, 12, 13, 14]}, index=[5, 6, 7, 8, 9])
    scores = split_policy(recorder("control", 0.0), recorder("treatment", 1000.0), [2])(candidates)
    np.testing.assert_array_equal(scores, [10, 1011, 12, 13, 1014])
    assert seen["control"]["post_id"].tolist() == [10, 12, 13]
    assert seen["treatment"]["post_id"].tolist() == [11, 14]
    assert seen["treatment"].index.tolist() == [0, 1]


def test_per_user_table_covers_every_user_with_a_session(aa_test: ABResult,
                                                         last_days: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    sessions, _ = last_days
    table, impressions = aa_test.per_user, aa_test.rollout.impressions
    assert list(table.columns) == ["user_id", "arm", *PER_USER_METRICS]
    assert sorted(table["user_id"]) == sorted(sessions["user_id"].unique())
    assert table["sessions"].sum() == len(sessions)
    assert table["impressions"].sum() == len(impressions)
    assert table["likes"].sum() == impressions["like"].sum()
    assert table["engagement"].sum() == pytest.approx(engagement_score(impressions).sum())
    pd.testing.assert_series_equal(table.set_index("user_id")["arm"], assign_arms(table["user_id"]),
                                   check_index_type=False)


def test_a_test_is_deterministic(small: World, last_days: tuple[pd.DataFrame, pd.DataFrame],
                                 aa_test: ABResult) -> None:
    sessions, history = last_days
    again = run_ab_test(small, legacy_ranker(0), legacy_ranker(0), sessions, seed=0, earlier_impressions=history)
    pd.testing.assert_frame_equal(again.per_user, aa_test.per_user)


def test_aa_test_finds_no_difference_and_no_ratio_mismatch(aa_test: ABResult) -> None:
    assert not aa_test.sample_ratio()["mismatch"]
    engagement = aa_test.compare(["engagement"]).loc["engagement"]
    assert engagement["p_value"] > 0.05
    assert engagement["rel_ci_low"] < 0 < engagement["rel_ci_high"]


def test_oracle_beats_the_legacy_ranker(ab_test: ABResult) -> None:
    assert not ab_test.sample_ratio()["mismatch"]
    table = ab_test.compare(["engagement", "expected_engagement"])
    for metric in table.index:
        assert table.loc[metric, "rel_lift"] > 0
        assert table.loc[metric, "rel_ci_low"] > 0
        assert table.loc[metric, "p_value"] < 0.01
        assert table.loc[metric, "significant"]


# ---- analysis ------------------------------------------------------------------------------------------
def hand_made() -> pd.DataFrame:
    return pd.DataFrame({"arm": ["control"] * 5 + ["treatment"] * 4,
                         "engagement": [1.0, 2.0, 3.0, 4.0, 10.0, 3.0, 5.0, 9.0, 2.0]})


def test_compare_arms_matches_scipy_welch() -> None:
    frame = hand_made()
    row = compare_arms(frame, "engagement", alpha=0.1)
    control, treatment = np.array([1.0, 2.0, 3.0, 4.0, 10.0]), np.array([3.0, 5.0, 9.0, 2.0])
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    assert row["p_value"] == pytest.approx(welch.pvalue)
    assert (row["n_control"], row["n_treatment"]) == (5, 4)
    assert row["control_mean"] == pytest.approx(4.0)
    assert row["treatment_mean"] == pytest.approx(4.75)
    assert row["abs_lift"] == pytest.approx(0.75)
    assert row["rel_lift"] == pytest.approx(0.75 / 4.0)
    var_c, var_t = control.var(ddof=1) / 5, treatment.var(ddof=1) / 4
    half = stats.t.ppf(0.95, welch.df) * np.sqrt(var_c + var_t)
    assert (row["abs_ci_low"], row["abs_ci_high"]) == pytest.approx((0.75 - half, 0.75 + half))
    rel_half = stats.norm.ppf(0.95) * np.sqrt(var_t / 16 + 4.75**2 * var_c / 4**4)
    assert (row["rel_ci_low"], row["rel_ci_high"]) == pytest.approx((0.75 / 4 - rel_half, 0.75 / 4 + rel_half))
    assert not row["significant"]


def test_compare_all_is_one_row_per_metric() -> None:
    frame = hand_made().assign(clicks=[0, 1, 0, 1, 0, 1, 1, 1, 0])
    table = compare_all(frame, ["engagement", "clicks"])
    assert table.index.tolist() == ["engagement", "clicks"]
    pd.testing.assert_series_equal(table.loc["engagement"], compare_arms(frame, "engagement"),
                                   check_dtype=False, check_names=False)
    assert table["n_control"].dtype == np.int64
    assert compare_all(frame).index.tolist() == ["clicks", "engagement"]  # PER_USER_METRICS present, in order


def test_sample_ratio_mismatch_is_a_chi_square_test() -> None:
    balanced = sample_ratio_mismatch(["control"] * 500 + ["treatment"] * 500)
    assert balanced["p_value"] == pytest.approx(1.0) and not balanced["mismatch"]
    skewed = sample_ratio_mismatch(["control"] * 600 + ["treatment"] * 400)
    assert skewed["p_value"] == pytest.approx(stats.chisquare([600, 400], [500, 500]).pvalue)
    assert skewed["mismatch"]
    assert not sample_ratio_mismatch(["control"] * 800 + ["treatment"] * 200, treatment_share=0.2)["mismatch"]


@pytest.mark.parametrize(("call", "name"), [
    (lambda: assign_arms([1, 2], treatment_share=1.5), "treatment_share"),
    (lambda: assign_arms([1, 2], salt=3), "salt"),
    (lambda: assign_arms([1.5, 2.0]), "user_ids"),
    (lambda: sample_size_per_arm(0.0, 1.0, 0.05), "baseline_mean"),
    (lambda: sample_size_per_arm(1.0, -1.0, 0.05), "baseline_std"),
    (lambda: sample_size_per_arm(1.0, 1.0, 0.0), "relative_lift"),
    (lambda: sample_size_per_arm(1.0, 1.0, 0.05, alpha=1.0), "alpha"),
    (lambda: sample_size_per_arm(1.0, 1.0, 0.05, power=float("nan")), "power"),
    (lambda: minimum_detectable_lift(1.0, 1.0, 1), "n_per_arm"),
    (lambda: minimum_detectable_lift(1.0, 1.0, 10.5), "n_per_arm"),
    (lambda: compare_arms(hand_made(), "dwell"), "metric"),
    (lambda: compare_arms(hand_made(), "engagement", alpha=0), "alpha"),
    (lambda: compare_arms(hand_made().head(6), "engagement"), "per_user"),
    (lambda: compare_arms(hand_made().assign(arm="a"), "engagement"), "per_user"),
    (lambda: compare_all(hand_made(), []), "metrics"),
    (lambda: sample_ratio_mismatch(["control", "b"]), "arms"),
    (lambda: sample_ratio_mismatch(["control"], treatment_share=0.0), "treatment_share"),
])
def test_bad_inputs_name_the_parameter(call, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}=.* accepts "):
        call()


def test_run_ab_test_rejects_a_share_that_empties_an_arm(small: World,
                                                         last_days: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="^treatment_share="):
        run_ab_test(small, legacy_ranker(0), legacy_ranker(0), last_days[0], treatment_share=1.0)


def candidate_rows(sessions: int = 40, per_session: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"session_id": np.repeat(np.arange(sessions), per_session),
                         "quality": np.tile(np.arange(per_session, dtype=float), sessions)})


def shown_order(scores: np.ndarray, rows: pd.DataFrame) -> list[list[float]]:
    """Each session's candidates (by quality) in the order the scores show them."""
    frame = rows.assign(score=scores).sort_values(["session_id", "score"], ascending=[True, False], kind="stable")
    return frame.groupby("session_id")["quality"].apply(list).tolist()


def test_epsilon_greedy_explores_the_share_it_is_asked_to() -> None:
    rows = candidate_rows()
    best_first = sorted(rows["quality"].unique(), reverse=True)
    by_quality = lambda c: c["quality"].to_numpy()  # noqa: E731
    greedy = shown_order(epsilon_greedy(by_quality, 0.0)(rows), rows)
    assert all(order == best_first for order in greedy)  # epsilon 0 is the policy itself
    explored = shown_order(epsilon_greedy(by_quality, 0.3, seed=1)(rows), rows)
    first_slot_best = np.mean([order[0] == best_first[0] for order in explored])
    assert 0.55 < first_slot_best < 0.9  # 1 - 0.3 + 0.3 / 10 = 0.73 expected
    assert all(sorted(order) == sorted(best_first) for order in explored)  # a reordering: nothing dropped
    again = shown_order(epsilon_greedy(by_quality, 0.3, seed=1)(rows), rows)
    assert again == explored  # seeded
    with pytest.raises(ValueError, match="epsilon=1.5 is invalid"):
        epsilon_greedy(by_quality, 1.5)


def test_rollout_refuses_a_history_whose_impression_ids_clash(small: World) -> None:
    log = small.impressions
    week = small.sessions.head(20)
    clashing = pd.concat([log, log.head(5).assign(post_id=log["post_id"].head(5) + 1)])
    with pytest.raises(ValueError, match="earlier_impressions=.* is invalid: earlier_impressions accepts "
                                         "impressions whose impression_id"):
        small.rollout(legacy_ranker(0), week, seed=0, earlier_impressions=clashing)
    retried = pd.concat([log, log.head(5)])  # an exact retry is fine
    small.rollout(legacy_ranker(0), week, seed=0, earlier_impressions=retried)


def test_epsilon_greedy_aims_its_exploration() -> None:
    rows = candidate_rows()
    by_quality = lambda c: c["quality"].to_numpy()  # noqa: E731
    worst_only = lambda c: (c["quality"] == 0).to_numpy()  # noqa: E731
    aimed = shown_order(epsilon_greedy(by_quality, 1.0, explore_among=worst_only)(rows), rows)
    assert all(order[0] == 0 and order[1:] == sorted(order[1:], reverse=True) for order in aimed)
    with pytest.raises(ValueError, match="explore_among=.* is invalid"):
        epsilon_greedy(by_quality, 0.5, explore_among=lambda c: np.ones(3, dtype=bool))(rows)
