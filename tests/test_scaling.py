"""Scaling: the other engines give chapter 3's aggregates, data-parallel training trains, fan-out and capacity
arithmetic count what they say, and bad input is refused by name."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from newsfeed import features, models, scaling
from newsfeed.estimates import Assumptions, estimate
from newsfeed.scaling import capped
from newsfeed.world import World


@pytest.fixture(scope="module")
def dataset(small: World) -> features.Dataset:
    """The features of conftest's small world (generated once per test process, for every module that needs one)."""
    return features.build_dataset(small, seed=0, cache_dir=None)


def requests_of(dataset: features.Dataset) -> pd.DataFrame:
    """Training rows (times inside the log, ties included) and serving requests after its end, shuffled."""
    log = dataset.log
    later = log.sample(300, random_state=0)[["user_id", "post_id"]].assign(
        timestamp=log["timestamp"].max() + pd.Timedelta(hours=1))
    return pd.concat([log[["user_id", "post_id", "timestamp"]], later], ignore_index=True).sample(frac=1.0,
                                                                                                random_state=1)


def test_duckdb_and_dask_give_chapter_3s_aggregates(dataset: features.Dataset, tmp_path: Path) -> None:
    requests = requests_of(dataset)
    expected = features.LogAggregates(dataset.log, dataset.posts).aggregates(requests)
    by_duckdb = scaling.DuckDBAggregates(dataset.log, dataset.posts).aggregates(requests)
    pd.testing.assert_frame_equal(by_duckdb[expected.columns], expected, rtol=1e-9, check_dtype=False)
    events = scaling.write_events(dataset.log, dataset.posts, tmp_path / "events", files=3)
    client = scaling.make_client(workers=2)
    try:
        dask = scaling.DaskAggregates(events, client, partitions=5)
        by_dask = dask.aggregates(requests)
        dask.write_log_aggregates(tmp_path / "dask")  # every impression's, written by the workers
    finally:
        client.close()
    pd.testing.assert_frame_equal(by_dask[expected.columns], expected, check_exact=True)
    # The whole log's aggregates, by the workers and by one pandas process, equal chapter 3's to the bit.
    whole = features.LogAggregates(dataset.log, dataset.posts).aggregates(dataset.log).reset_index(drop=True)
    scaling.log_aggregates_in_one_process(events, (tmp_path / "pandas"))
    for engine in ("dask", "pandas"):
        written = scaling.read_log_aggregates(tmp_path / engine)
        assert written.index.tolist() == list(range(len(dataset.log))), engine
        pd.testing.assert_frame_equal(written[whole.columns], whole, check_exact=True)


def test_a_process_over_the_cap_is_killed_and_one_under_it_finishes() -> None:
    """run_capped watches every process of the command: 300 MB held under a 200 MB cap is killed."""
    hold = [sys.executable, "-c", "import time; block = bytearray(300_000_000); time.sleep(0.5); print('done')"]
    over = capped.run_capped(hold, cap_mb=200, timeout=60)
    assert over.killed and not over.finished and "cap of 200 MB" in over.last_line
    assert 200 < over.peak_mb < 400
    free = capped.run_capped(hold, cap_mb=None, timeout=60)
    assert free.finished and not free.killed and free.last_line == "done" and free.peak_mb > 300
    with pytest.raises(ValueError, match="cap_mb=0 is invalid"):
        capped.run_capped(hold, cap_mb=0, timeout=60)


def test_engines_refuse_bad_settings(dataset: features.Dataset, tmp_path: Path) -> None:
    events = scaling.write_events(dataset.log.head(100), dataset.posts, tmp_path / "events", files=1)
    with pytest.raises(ValueError, match="partitions=0 is invalid: partitions accepts an integer >= 1"):
        scaling.DaskAggregates(events, client=None, partitions=0)
    with pytest.raises(ValueError, match="client='NoneType' is invalid: client accepts a dask.distributed Client"):
        scaling.DaskAggregates(events, client=None)
    with pytest.raises(ValueError, match="events=.* is invalid: events accepts a folder written by write_events"):
        scaling.DaskAggregates(tmp_path, client=type("Client", (), {"compute": None})())
    with pytest.raises(ValueError, match="files=0 is invalid"):
        scaling.write_events(dataset.log, dataset.posts, tmp_path / "none", files=0)
    with pytest.raises(ValueError, match="copies=0 is invalid"):
        scaling.tile_log(dataset.log, dataset.posts, 0, 10)
    with pytest.raises(ValueError, match="threads=0 is invalid: threads accepts an integer >= 1"):
        scaling.DuckDBAggregates(dataset.log, dataset.posts, threads=0)
    with pytest.raises(ValueError, match="requests is missing"):
        scaling.DuckDBAggregates(dataset.log, dataset.posts).aggregates(dataset.log[["user_id"]])


def test_tiled_copies_share_no_key(dataset: features.Dataset) -> None:
    log, posts = scaling.tile_log(dataset.log, dataset.posts, 3, 10_000)
    assert len(log) == 3 * len(dataset.log) and posts["post_id"].is_unique and log["impression_id"].is_unique
    copy = np.repeat([0, 1, 2], len(dataset.log))
    assert (log.groupby("user_id")["impression_id"].count() > 0).all()
    assert pd.Series(copy).groupby(log["user_id"].to_numpy()).nunique().max() == 1


def test_data_parallel_training_learns_and_reports_its_costs(dataset: features.Dataset) -> None:
    config = models.MultiTaskConfig(hidden=(32,), embedding_dim=4, max_epochs=2, batch_size=256, seed=0)
    train, test = dataset.part("train", "valid"), dataset.part("test")
    model, measured = scaling.fit_data_parallel(train, config, world_size=2)
    assert measured["gradient_bytes"] == 8 * model.n_parameters  # float64 gradients (models.TRAINING_DTYPE)
    assert measured["losses"][-1] < measured["losses"][0] and measured["all_reduce_seconds"] > 0
    single, _ = scaling.epoch_seconds_single(train, config)
    # Half a batch per process, gradients averaged: the same training up to dropout draws and sum order.
    gap = np.abs(model.score(test) - single.score(test)).mean() / np.abs(single.score(test)).mean()
    assert gap < 0.1
    with pytest.raises(ValueError, match="world_size=0 is invalid"):
        scaling.fit_data_parallel(train, config, world_size=0)


def test_fanout_counts_writes_and_reads() -> None:
    now = pd.Timestamp("2026-01-10")
    edges = pd.DataFrame({"user_id": [1, 2, 3, 1], "target_id": [9, 9, 9, 8],
                          "created_at": pd.Timestamp("2026-01-01")})
    posts = pd.DataFrame({"author_id": [9, 8, 7]})  # 3, 1 and 0 followers
    requests = pd.DataFrame({"user_id": [1, 2, 5]})  # follows 2 accounts, 1, none
    costs = scaling.fanout_costs(edges, posts, requests, [np.inf, 1, 0], now, writes_per_second=1.0)
    assert costs.loc[np.inf].tolist() == [4 / 3, 0.0, 3.0]
    assert costs.loc[1].tolist() == [1 / 3, 2 / 3, 1.0]  # account 9 (3 followers) is pulled by readers 1 and 2
    assert costs.loc[0].tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="thresholds=\\[-1\\] is invalid"):
        scaling.fanout_costs(edges, posts, requests, [-1], now)


def test_capacity_scales_with_traffic_and_names_bad_costs() -> None:
    costs = scaling.UnitCosts(request_ms=20.0, candidate_ms=0.01, light_candidate_ms=1e-5,
                              store_bytes_per_row=30.0, train_rows_per_core_second=2e4)
    base = scaling.fleet(Assumptions(), costs)
    double = scaling.fleet(Assumptions(daily_active_users=4e9), costs)
    assert double["serving cores"] == pytest.approx(2 * base["serving cores"])
    assert base["CPU-ms per request"] == pytest.approx(20 + 1e-5 * 1500 + 0.01 * 300)
    table = scaling.sensitivity(Assumptions(), costs, ["daily_active_users", "request_ms"])
    assert table.loc[("daily_active_users", "x2"), "serving cores"] == pytest.approx(2.0)
    assert 1.0 < table.loc[("request_ms", "x2"), "serving cores"] < 2.0
    with pytest.raises(ValueError, match="utilization=1.5 is invalid"):
        scaling.UnitCosts(1.0, 1.0, 1.0, 1.0, 1.0, utilization=1.5)
    with pytest.raises(ValueError, match="heavy_candidates=-300 is invalid"):
        scaling.UnitCosts(1.0, 1.0, 1.0, 1.0, 1.0, heavy_candidates=-300)
    with pytest.raises(ValueError, match="names=\\['request_msec'\\] is invalid"):
        scaling.sensitivity(Assumptions(), costs, ["request_msec"])
    with pytest.raises(ValueError, match="factor=0 is invalid"):
        scaling.sensitivity(Assumptions(), costs, ["request_ms"], factor=0)


def test_capacity_cores_follow_their_formulas() -> None:
    """Absolute fleet sizes, worked by hand: serving cores are peak requests/s x CPU-seconds per request /
    utilization; training cores are a day's impressions / (rows per core-second x the hours allowed x 3,600)."""
    costs = scaling.UnitCosts(request_ms=20.0, candidate_ms=0.01, light_candidate_ms=1e-5,
                              store_bytes_per_row=30.0, train_rows_per_core_second=2e4, utilization=0.5,
                              training_hours=4.0)
    assumptions = Assumptions()
    traffic = estimate(assumptions)
    fleet = scaling.fleet(assumptions, costs)
    request_seconds = (20 + 1e-5 * 1500 + 0.01 * 300) / 1000
    assert fleet["serving cores"] == pytest.approx(traffic.peak_requests_per_second * request_seconds / 0.5)
    assert fleet["training cores"] == pytest.approx(traffic.impressions_per_day / (2e4 * 4.0 * 3600))
    assert fleet["feature store bytes"] == pytest.approx(
        assumptions.daily_active_users * assumptions.connections_per_user * 30.0)
