"""Back-of-envelope estimates: hand-checked values, linear scaling, validation, and readable units."""

from __future__ import annotations

import dataclasses
import math

import pytest

from newsfeed.estimates import SECONDS_PER_DAY, Assumptions, estimate, max_candidates_within, readable


def test_default_estimates_match_a_hand_calculation() -> None:
    a = Assumptions()
    e = estimate(a)
    peak = a.daily_active_users * a.feed_requests_per_user_per_day / SECONDS_PER_DAY * a.peak_to_mean
    assert e.peak_requests_per_second == pytest.approx(peak)
    assert e.impression_log_bytes_per_day == pytest.approx(2e9 * 10 * 10 * 200)  # 40 TB/day
    assert e.features_per_candidate == 200 + 100 + 20
    store = 4 * (2e9 * 200 + 2e9 * 300 * 20 + 2e9 * 0.25 * 2 * 100)
    assert e.feature_store_bytes == pytest.approx(store)
    assert e.feature_bytes_per_request == pytest.approx(4 * (200 + 1_500 * 120))
    assert e.ranking_cpu_ms_per_request == pytest.approx(1_500 * 2e6 / 2e10 * 1_000)  # 150 CPU-ms
    assert e.ranking_cores_at_peak == pytest.approx(peak * 1_500 * 2e6 / 2e10)


def test_estimates_scale_linearly_with_users_and_candidates() -> None:
    base = estimate(Assumptions())
    double_users = estimate(Assumptions(daily_active_users=4e9))
    assert double_users.peak_requests_per_second == pytest.approx(2 * base.peak_requests_per_second)
    assert double_users.feature_store_bytes == pytest.approx(2 * base.feature_store_bytes)
    assert double_users.ranking_cpu_ms_per_request == pytest.approx(base.ranking_cpu_ms_per_request)
    double_candidates = estimate(Assumptions(candidates_per_request=3_000))
    assert double_candidates.ranking_cores_at_peak == pytest.approx(2 * base.ranking_cores_at_peak)
    assert double_candidates.impression_log_bytes_per_day == pytest.approx(base.impression_log_bytes_per_day)


def test_tables_name_every_field_with_readable_values() -> None:
    assumptions = Assumptions().table()
    assert list(assumptions.index) == [f.name for f in dataclasses.fields(Assumptions)]
    assert assumptions.loc["daily_active_users", "value"] == "2 bn people"
    estimates = estimate(Assumptions()).table()
    assert len(estimates) == len(dataclasses.fields(estimate(Assumptions())))
    assert {"value", "unit", "readable", "how"} <= set(estimates.columns)
    assert estimates.loc["impression log per day", "readable"] == "40 TB/day"
    assert estimates.loc["feed requests per second, peak", "readable"] == "463 k requests/s"


def test_max_candidates_within_inverts_the_ranking_cost() -> None:
    a = Assumptions()
    fit = max_candidates_within(50, a.flops_per_candidate, a.flops_per_core_second)
    at_budget = estimate(dataclasses.replace(a, candidates_per_request=fit))
    assert at_budget.ranking_cpu_ms_per_request == pytest.approx(50)
    assert max_candidates_within(50, a.flops_per_candidate, a.flops_per_core_second, cores=4) == pytest.approx(4 * fit)


@pytest.mark.parametrize(("name", "bad"), [("daily_active_users", 0), ("daily_active_users", -5.0),
                                           ("peak_to_mean", 0.5), ("candidates_per_request", math.nan),
                                           ("flops_per_candidate", math.inf), ("user_features", "200"),
                                           ("bytes_per_feature", True), ("candidate_window_days", 1e6)])
def test_bad_assumptions_name_the_parameter_and_its_range(name: str, bad: object) -> None:
    with pytest.raises(ValueError, match=rf"{name}=.* is invalid: {name} accepts a number from \S+ to \S+"):
        Assumptions(**{name: bad})
    with pytest.raises(ValueError, match=rf"{name}=.* is invalid"):
        dataclasses.replace(Assumptions(), **{name: bad})


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="assumptions=.* is invalid"):
        estimate({"daily_active_users": 2e9})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency_ms=0 is invalid: latency_ms accepts a finite number > 0"):
        max_candidates_within(0, 2e6, 2e10)
    with pytest.raises(ValueError, match="cores=0 is invalid"):
        max_candidates_within(50, 2e6, 2e10, cores=0)
    with pytest.raises(ValueError, match="value=nan is invalid"):
        readable(math.nan, "B")


@pytest.mark.parametrize(("value", "unit", "text"), [
    (1.2e6, "requests/s", "1.2 M requests/s"),
    (3.5e13, "B/day", "35 TB/day"),
    (2e9, "people", "2 bn people"),
    (999.6, "people", "1 k people"),
    (463, "requests/s", "463 requests/s"),
    (3e9, "FLOP", "3 GFLOP"),
    (150, "CPU-ms", "150 CPU-ms"),
    (1.89, "ratio", "1.89x"),
    (0, "B", "0 B"),
    (2.88e6, "", "2.88 M"),
    (0.0246, "requests/s", "0.0246 requests/s"),
    (8.314e-5, "cores", "0.0000831 cores"),
    (0.25, "posts/person/day", "0.25 posts/person/day"),
])
def test_readable(value: float, unit: str, text: str) -> None:
    assert readable(value, unit) == text


def test_latency_budget_is_one_table_the_book_shares() -> None:
    from newsfeed.estimates import END_TO_END_P99_MS, RANKING_P99_MS, latency_budget, server_budget_ms

    stages = latency_budget()
    assert stages["p99_ms"].sum() == END_TO_END_P99_MS
    assert stages.set_index("stage").at["heavy ranking", "p99_ms"] == RANKING_P99_MS
    assert server_budget_ms() == 150.0 and server_budget_ms(latency_budget(300, 80)) == 180.0
    with pytest.raises(ValueError, match="end_to_end_ms=100 is invalid: end_to_end_ms accepts more than"):
        latency_budget(100)
    with pytest.raises(ValueError, match="ranking_ms=0 is invalid"):
        latency_budget(ranking_ms=0)
