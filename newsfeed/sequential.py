"""Experiments read more than once: what daily looks at a fixed-horizon test do to its false positives, and a test
that allows them.

A dashboard shows the A/B test's p-value every day; stopping on the first day it dips under 5% turns a 5% test into
a much looser one, because each look is another chance for noise to cross the line. ``cumulative_by_day`` turns an
impression log into each user's running metric day by day (a user counts from their first visit); ``looks`` gives
every day's difference in means and its variance for many randomizations at once; ``fixed_horizon`` and
``first_crossing`` read them as a fixed-horizon test and as a test peeked at daily; ``msprt`` is the mixture
sequential probability ratio test (Johari et al.), always valid: its false-positive rate stays under alpha however
often it is read, paid for in power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from newsfeed.metrics import engagement_score
from newsfeed.validation import require, require_float, require_int


@dataclass(frozen=True)
class DailyMetric:
    """Each user's metric summed from the experiment's first day through each day (``running``: days x users) and
    whether the user had entered by then (``entered``: their first visit on or before that day)."""

    users: np.ndarray
    running: np.ndarray
    entered: np.ndarray

    @property
    def days(self) -> int:
        return self.running.shape[0]


def cumulative_by_day(impressions: pd.DataFrame, start: pd.Timestamp, days: int) -> DailyMetric:
    """Each user's weighted engagement (``metrics.engagement_score``) over ``days`` days from ``start``, summed
    through each day: what a dashboard computes every morning of the test."""
    require_int("days", days, lo=1)
    window = impressions[(impressions["timestamp"] >= start)
                         & (impressions["timestamp"] < start + pd.Timedelta(days=days))]
    require("impressions", f"<{len(impressions)} rows>", len(window) > 0,
            f"impressions in the {days} days from {start}")
    day = ((window["timestamp"] - start) // pd.Timedelta(days=1)).to_numpy()
    users, column = np.unique(window["user_id"].to_numpy(), return_inverse=True)
    daily = np.zeros((days, len(users)))
    np.add.at(daily, (day, column), engagement_score(window).to_numpy())
    first = np.full(len(users), days)
    np.minimum.at(first, column, day)
    entered = np.arange(days)[:, None] >= first[None, :]
    return DailyMetric(users, daily.cumsum(axis=0), entered)


def looks(metric: DailyMetric, treated: np.ndarray,
          control: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each day and each randomization, the treatment's mean minus the control's among users
    who have entered, and that difference's variance (Welch).

    A row of ``treated`` is each user's weight in the treatment arm: 1 or 0 for an assignment, a
    count for a bootstrap resample; ``control`` likewise, by default the users not treated.
    """
    treated = np.asarray(treated, dtype=float)
    control = 1.0 - treated if control is None else np.asarray(control, dtype=float)
    for name, arm in (("treated", treated), ("control", control)):
        require(name, str(arm.shape), arm.ndim == 2 and arm.shape[1] == len(metric.users),
                f"one row per randomization, one column per user ({len(metric.users)})")
    differences, variances = [], []
    # A day on which an arm has fewer than two users gives NaN: no look, and no crossing.
    with np.errstate(invalid="ignore", divide="ignore"):
        for day in range(metric.days):
            present = metric.entered[day].astype(float)
            value = metric.running[day] * present
            moments = []
            for arm in (treated, control):
                n = arm @ present
                mean = (arm @ value) / n
                moments.append((mean, (arm @ (value * value) - n * mean**2) / (n - 1) / n))
            (treated_mean, treated_var), (control_mean, control_var) = moments
            differences.append(treated_mean - control_mean)
            variances.append(treated_var + control_var)
    return np.array(differences), np.array(variances)


def p_values(difference: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Two-sided p-values of a z-test on each day's difference (the test chapter 5 reads once)."""
    return 2 * stats.norm.sf(np.abs(difference) / np.sqrt(variance))


def msprt(difference: np.ndarray, variance: np.ndarray, tau: float) -> np.ndarray:
    """The mixture SPRT's likelihood ratio at each look: a normal mixture of effects with spread
    ``tau`` (in the metric's units, about the size of effect worth finding) against no effect.
    Rejecting when it reaches ``1 / alpha`` keeps the false-positive rate under alpha at every
    look, however many, for independent observations with a known variance; with the variance
    estimated at each look, and running totals of the same users, approximately."""
    require_float("tau", tau, 0.0, open_lo=True)
    tau2 = tau**2
    shrink = np.sqrt(variance / (variance + tau2))
    return shrink * np.exp(tau2 * difference**2 / (2 * variance * (variance + tau2)))


def first_crossing(crossed: np.ndarray) -> np.ndarray:
    """The first day (1-based) each randomization's test crossed its line (``crossed``: days x randomizations),
    or 0 if it never did."""
    hit = crossed.any(axis=0)
    return np.where(hit, crossed.argmax(axis=0) + 1, 0)
