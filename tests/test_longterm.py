"""Effects that take weeks: the redesign's truth, holdouts, the family of launches, per assigned user."""

from __future__ import annotations

import numpy as np
import pytest

from newsfeed import longterm
from newsfeed.metrics import engagement_score
from newsfeed.world import World


def test_metrics_count_every_assigned_user_and_day(small: World) -> None:
    n = small.n_people
    treated = np.zeros(n, dtype=bool)
    table, assigned = longterm.served(small, treated, 0.0, longterm.WITH_MEMORY, 20, 7)
    assert set(table) == set(longterm.METRICS) and all(v.shape == (n, 7) for v in table.values())
    sessions = small.sessions[(small.sessions["started_at"] >= small.config.start_time + np.timedelta64(20, "D"))
                              & (small.sessions["started_at"] < small.config.start_time + np.timedelta64(27, "D"))]
    assert assigned.sum() == sessions["user_id"].nunique()
    assert table["visits"].sum() < len(sessions)  # the return rate: not every visit happens
    assert (table["bounces"] <= table["clicks"]).all()


def test_before_test_counts_the_week_before(small: World) -> None:
    before = longterm.before_test(small, 14)
    log = small.impressions[(small.impressions["timestamp"] >= small.config.start_time + np.timedelta64(7, "D"))
                            & (small.impressions["timestamp"] < small.config.start_time + np.timedelta64(14, "D"))]
    assert before["clicks"].sum() == log["click"].sum()
    assert before["engagement"].sum() == pytest.approx(engagement_score(log).sum())
    assert before["visits"].sum() == log["session_id"].nunique()


def test_a_click_tuned_redesign_bounces_more(small: World) -> None:
    family = longterm.launch_family(small, {"clicks +60": (60.0, 0.0)}, 14, 7, seeds=(0,))
    assert family.loc[0, "week 1 bounce rate"] > 0.05
    holdout = longterm.holdouts(small, 14, 7, 1)
    assert set(holdout["metric"]) == {"clicks", "engagement", "visits"} and set(holdout["week"]) == {1}
    assert np.isfinite(holdout[["lift", "se", "cuped"]].to_numpy()).all()
