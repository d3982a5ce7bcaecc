"""Off-policy evaluation on logs of a shuffled first screen: the policies that log and are evaluated, and the
estimators slot by slot, on a world small enough that the true value of every policy is known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from newsfeed import experiments, policies
from newsfeed.offpolicy import evaluation
from newsfeed.world import World, legacy_ranker

TOP = 3


def test_reorder_top_shows_the_first_policys_best_posts_in_the_second_policys_order() -> None:
    candidates = pd.DataFrame({"session_id": np.repeat([0, 1], 6), "quality": np.tile(np.arange(6.0), 2)})
    seen = []

    def upside_down(rows: pd.DataFrame) -> np.ndarray:
        seen.append(len(rows))
        return -rows["quality"].to_numpy()

    scores = policies.reorder_top(lambda rows: rows["quality"].to_numpy(), upside_down, TOP)(candidates)
    order = candidates.assign(score=scores).sort_values(["session_id", "score"], ascending=[True, False])
    assert order["quality"].tolist() == [3.0, 4.0, 5.0, 2.0, 1.0, 0.0] * 2  # the best three, reversed; the rest
    assert seen == [2 * TOP]  # the second policy scores only the first screens
    with pytest.raises(ValueError, match="^by=1 is invalid: by accepts a callable"):
        policies.reorder_top(upside_down, 1)


def synthetic_log(share: float, sessions: int, seed: int = 0) -> tuple[pd.DataFrame, list[pd.DataFrame], np.ndarray]:
    """A logging policy's first screens: each session's TOP posts with appeals, intended in a noisy order of
    appeal, shuffled in a ``share`` of sessions; clicks = appeal times examination ``k ** -0.6``."""
    rng = np.random.default_rng(seed)
    appeal = rng.uniform(0.05, 0.6, size=(sessions, TOP))
    intended = np.argsort(np.argsort(-(appeal + rng.normal(0, 0.3, appeal.shape)), axis=1), axis=1) + 1
    shuffled = rng.random(sessions) < share
    position = np.where(shuffled[:, None], np.argsort(rng.random((sessions, TOP)), axis=1) + 1, intended)
    clicks = rng.random(appeal.shape) < appeal * position ** -0.6
    ids = {"session_id": np.repeat(np.arange(sessions), TOP), "post_id": np.arange(sessions * TOP)}
    log = pd.DataFrame({**ids, "position": position.ravel(), "click": clicks.ravel().astype(int),
                        "appeal": appeal.ravel()})
    return log, [pd.DataFrame({**ids, "intended": intended.ravel()})], appeal


def test_the_estimators_find_a_new_policys_true_value_and_the_low_overlap_log_is_the_noisier() -> None:
    found = {}
    for share in (0.1, 1.0):
        log, record, appeal = synthetic_log(share, 30_000)
        screen = evaluation.first_screen(log, record, share, TOP)
        assert len(screen) == len(log) and (screen.groupby("session_id")["intended"].apply(list)
                                            == [list(range(1, TOP + 1))] * 30_000).all()
        agrees = screen["intended"] == screen["position"]
        np.testing.assert_allclose(screen["propensity"], share / TOP + (1 - share) * agrees)
        target = evaluation.target_probabilities(screen["appeal"], TOP)  # the best post first
        exam = np.arange(1, TOP + 1) ** -0.6
        truth = float((np.sort(appeal, axis=1)[:, ::-1] * exam).mean())
        model = evaluation.reward_model(screen, np.log(screen["appeal"]), "click")
        terms = evaluation.session_terms(screen, target, model(np.log(screen["appeal"])), "click")
        found[share] = evaluation.against_truth({"best first": terms}, {"best first": truth}, TOP, resamples=100)
        for estimator in ("IPS", "self-normalized IPS", "doubly robust"):
            row = found[share].loc[("best first", estimator)]
            assert abs(row["error"]) < 3 * row["spread"] + 1e-3, (share, estimator)
    spread = {share: found[share].xs("IPS", level="estimator")["spread"].iloc[0] for share in found}
    assert spread[0.1] > 2 * spread[1.0]  # a tenth of the sessions randomized: few posts where the policy wants them
    exploring = evaluation.target_probabilities(screen["appeal"], TOP, explore=0.3)
    np.testing.assert_allclose(exploring.sum(axis=2), 1.0)
    np.testing.assert_allclose(exploring.min(), 0.1)


def test_bad_logs_and_policies_are_refused_by_name() -> None:
    log, record, _ = synthetic_log(0.5, 10)
    with pytest.raises(ValueError, match="^share=0 is invalid: share accepts a number > 0 and <= 1"):
        evaluation.first_screen(log, record, 0, TOP)
    with pytest.raises(ValueError, match="^record='0 frames' is invalid: record accepts the frames"):
        evaluation.first_screen(log, [], 0.5, TOP)
    with pytest.raises(ValueError, match="^record='posts without an intended rank' is invalid"):
        evaluation.first_screen(log, [record[0].iloc[1:]], 0.5, TOP)
    with pytest.raises(ValueError, match="^explore=2 is invalid: explore accepts a number from 0 to 1"):
        evaluation.target_probabilities(log["appeal"], TOP, explore=2)
    with pytest.raises(ValueError, match="^resamples=1 is invalid: resamples accepts an integer >= 2"):
        evaluation.against_truth({}, {}, TOP, resamples=1)


def test_each_estimator_is_its_ratio_of_session_sums() -> None:
    terms = pd.DataFrame({"direct": [0.9, 1.2], "weight": [2.0, 6.0], "weighted reward": [0.6, 1.8],
                          "weighted error": [0.3, -0.3]})
    found = evaluation.estimate(terms, TOP)
    assert found["direct method"] == pytest.approx(1.05 / TOP)
    assert found["IPS"] == pytest.approx(1.2 / TOP)
    assert found["self-normalized IPS"] == pytest.approx(2.4 / 8.0)  # the weighted rewards over the weights
    assert found["doubly robust"] == pytest.approx(1.05 / TOP)


def test_true_values_serve_each_policy_and_read_the_kept_study(small: World, tmp_path: Path) -> None:
    _, history, sessions = experiments.test_window(small, 20, 1)
    made: list[str] = []

    def maker(name: str, policy: policies.Policy) -> object:
        def make() -> policies.Policy:
            made.append(name)
            return policy
        return make

    upside_down = policies.reorder_top(legacy_ranker(0), lambda rows: -legacy_ranker(0)(rows), TOP)
    makers = {"legacy": maker("legacy", legacy_ranker(0)), "upside down": maker("upside down", upside_down)}
    values = evaluation.true_values(small, makers, sessions, history, "click", TOP, 0, tmp_path)
    assert made == ["legacy", "upside down"] and set(values) == set(makers)
    assert all(0 < value < 1 for value in values.values())
    served = small.rollout(legacy_ranker(0), sessions, seed=0, earlier_impressions=history)
    assert values["legacy"] == evaluation.true_value(served.probabilities, served.impressions, "click", TOP)
    assert evaluation.true_values(small, makers, sessions, history, "click", TOP, 0, tmp_path) == values
    assert len(made) == 2  # read back: no policy made, none served
    with pytest.raises(ValueError, match="makers"):
        evaluation.true_values(small, {}, sessions, history, "click", TOP)
