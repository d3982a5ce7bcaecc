"""Tests read every day: the running metric by day, the looks, the peeking they allow, and the mixture SPRT."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from newsfeed import sequential
from newsfeed.metrics import engagement_score
from newsfeed.world import REACTIONS


def test_the_running_metric_counts_each_user_from_their_first_day() -> None:
    start = pd.Timestamp("2026-01-01")
    log = pd.DataFrame({"user_id": [7, 7, 3, 3], "timestamp": start + pd.to_timedelta([0.5, 2.5, 1.2, 9], unit="D"),
                        "click": [1, 0, 0, 0], "like": [0, 1, 1, 0], "comment": 0, "share": 0, "hide": [0, 0, 0, 1]})
    metric = sequential.cumulative_by_day(log, start, 3)  # the hide on day 9 is after the window
    assert metric.users.tolist() == [3, 7] and metric.days == 3
    assert metric.entered.tolist() == [[False, True], [True, True], [True, True]]
    like, click = (float(engagement_score(pd.DataFrame({r: [int(r == k)] for r in REACTIONS}))[0])
                   for k in ("like", "click"))
    np.testing.assert_allclose(metric.running[:, 0], [0, like, like])
    np.testing.assert_allclose(metric.running[:, 1], [click, click, click + like])
    with pytest.raises(ValueError, match="impressions"):
        sequential.cumulative_by_day(log, start + pd.Timedelta(days=30), 3)


def test_looks_are_welchs_difference_and_variance() -> None:
    rng = np.random.default_rng(0)
    running = rng.exponential(size=(2, 40)).cumsum(axis=0)
    entered = np.ones((2, 40), dtype=bool)
    entered[0, :10] = False
    metric = sequential.DailyMetric(np.arange(40), running, entered)
    treated = (np.arange(40) % 2 == 0).astype(float)[None, :]
    difference, variance = sequential.looks(metric, treated)
    for day in range(2):
        a = running[day][entered[day] & (treated[0] == 1)]
        b = running[day][entered[day] & (treated[0] == 0)]
        assert difference[day, 0] == pytest.approx(a.mean() - b.mean())
        assert variance[day, 0] == pytest.approx(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    # A bootstrap draw counts a user as often as drawn.
    twice = np.where(np.arange(40) == 0, 2.0, treated[0])[None, :]
    heavier, _ = sequential.looks(metric, twice, 1.0 - treated)
    copies = np.append(running[1][treated[0] == 1], running[1][0])
    assert heavier[1, 0] == pytest.approx(copies.mean() - running[1][treated[0] == 0].mean())
    with pytest.raises(ValueError, match="treated"):
        sequential.looks(metric, np.ones((3, 5)))


def test_peeking_inflates_false_positives_and_the_mixture_sprt_does_not() -> None:
    """On null data read at 14 looks: a fixed-horizon test read once rejects about alpha of the time, read every
    look far more, the mixture SPRT at most alpha."""
    rng = np.random.default_rng(1)
    tests, looks, per_look = 4000, 14, 50
    increments = rng.normal(size=(looks, tests, 2, per_look))
    sums = increments.sum(axis=3).cumsum(axis=0)  # per arm, running sums over the looks
    counts = per_look * np.arange(1, looks + 1)[:, None]
    difference = (sums[..., 0] - sums[..., 1]) / counts
    variance = 2.0 / counts * np.ones((1, tests))
    p = sequential.p_values(difference, variance)
    once, daily = (p[-1] < 0.05).mean(), (sequential.first_crossing(p < 0.05) > 0).mean()
    ratio = sequential.msprt(difference, variance, tau=0.1)
    always = (sequential.first_crossing(ratio >= 20) > 0).mean()
    assert 0.04 < once < 0.06 and daily > 0.15 and always < 0.05
    assert sequential.p_values(np.zeros(1), np.ones(1))[0] == pytest.approx(1.0)


def test_first_crossing_is_one_based_and_zero_when_never() -> None:
    crossed = np.array([[False, False, True], [True, False, True], [True, False, False]])
    assert sequential.first_crossing(crossed).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="tau=0"):
        sequential.msprt(np.zeros(1), np.ones(1), tau=0.0)


def test_the_mixture_ratio_is_the_normal_mixture_likelihood_ratio() -> None:
    """For a difference d with variance V and a N(0, tau^2) mixture of effects: the ratio of the marginal
    density N(d; 0, V + tau^2) to the null density N(d; 0, V)."""
    d, v, tau = np.array([1.0, 0.0, -2.0]), np.array([1.0, 0.5, 4.0]), 1.5
    expected = stats.norm.pdf(d, scale=np.sqrt(v + tau**2)) / stats.norm.pdf(d, scale=np.sqrt(v))
    np.testing.assert_allclose(sequential.msprt(d, v, tau), expected, rtol=1e-12)
