"""Every benchmark in benchmarks/ runs to the end at a tiny size and reports sensible numbers.

Each script runs as a subprocess with ``--json``, as ``make benchmark`` runs it, on the small world with its own
options for a quick run (fewer requests, queries and posts, one copy, a network trained for one epoch and
retrained with one more seed, only chapter 0): the point is that every script still runs and its report keeps
its shape, not the numbers of the book. The network trained here is cached apart from the shipped one (in
``<its folder>-epochs1``), so it never stands in for it.

About 50 s in all on a 2-core machine, half of it six fresh interpreters importing PyTorch and scikit-learn (the
runs are in sequence: two at once were slower there). Not covered: serving.py's load test (its service builds the
shipped network of the world it serves, about 15 s more on the small world), and scale.py's engines other than
DuckDB (pandas's is the features' own code, tested in test_features.py; a Dask cluster takes seconds to start);
all run in ``make benchmark``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
ENV = {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
REACTIONS = ("click", "like", "comment", "share", "hide")


def run(script: str, *options: str, timeout: float = 300) -> dict:
    """Run ``benchmarks/<script> --json <options>`` and return the JSON object it prints."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--json", *options], cwd=ROOT,
                          env={**os.environ, **ENV}, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} exited with {done.returncode}:\n{done.stderr[-3000:]}"
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"{script} --json printed more than one JSON object: {error}\n"
                             f"{done.stdout[:2000]}") from error


def numbers(value: object, where: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a JSON value, with its path (``a.b.c``)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield where, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from numbers(item, f"{where}[{i}]")


def assert_finite(report: dict) -> None:
    bad = [path for path, number in numbers(report) if not math.isfinite(number)]
    assert not bad, f"not finite: {bad}"


def assert_latency(row: dict, where: str) -> None:
    """p99 >= p95 >= p50 > 0 where p95 is reported, else p99 >= p50 > 0."""
    assert row["p99_ms"] >= row.get("p95_ms", row["p50_ms"]) >= row["p50_ms"] > 0, (where, row)


def test_ranking() -> None:
    report = run("ranking.py", "--scale", "small", "--epochs", "1", "--trees", "10", "--seeds", "0", "1",
                 "--ladder", "rungs")
    assert_finite(report)
    rungs = report["ladder"]["rungs"]  # chapter 4's rungs, each over both seeds
    assert list(rungs) == ["shared layers (as shipped)", "cross network (DCN-v2)", "hide tower",
                           "recent engagements (DIN)"]
    assert report["ladder"]["oracle"]["ndcg@10"] == pytest.approx(1.0)
    for name, rung in rungs.items():
        assert rung["seeds"] == 2 and rung["std"]["ndcg@10"] >= 0 and 0 < rung["mean"]["ndcg@10"] <= 1, name
        assert all(rung["calibration_lowest"][r] <= rung["calibration_highest"][r] for r in REACTIONS), name
    seeds = report["network_seeds"]
    assert set(seeds["per_seed"]) == {"0", "1"} and seeds["std"]["ndcg@10"] > 0  # two seeds, two networks
    for row in seeds["per_seed"].values():  # each seed's heads recalibrated nightly, over labels and truth
        assert all(row[f"nightly_{against}_{r}"] > 0 for against in ("calibration", "truth") for r in REACTIONS)
    assert {"reverse-chronological", "popularity", "logistic regression", "gradient-boosted trees"} < set(
        report["models"]) and len(report["models"]) == 5
    assert (report["scale"], report["epochs"], report["trees"]) == ("small", 1, 10)
    assert 0 < report["test_sessions"] < report["test_impressions"]
    assert report["seconds_to_train_or_load"] >= 0
    for name, row in [*report["models"].items(), ("oracle", report["oracle"]), ("random", report["random"])]:
        assert 0 <= row["ndcg@10"] <= 1 and 0 <= row["ndcg@10_logged"] <= 1, name
        for reaction in REACTIONS:
            assert 0 <= row[f"auc_{reaction}"] <= 1, (name, reaction)
            if name != "random":
                assert row[f"calibration_{reaction}"] > 0 and row[f"ece_{reaction}"] >= 0, (name, reaction)
            if name in report["models"]:  # the share of the oracle's lift over random
                lift = (row[f"auc_{reaction}"] - 0.5) / (report["oracle"][f"auc_{reaction}"] - 0.5)
                assert row[f"auc_lift_share_{reaction}"] == pytest.approx(lift), (name, reaction)
    # The world's own expected engagement is the relevance itself: the oracle's order is the ideal one.
    assert report["oracle"]["ndcg@10"] == pytest.approx(1.0)
    assert report["models"]["logistic regression"]["ndcg@10"] > report["random"]["ndcg@10"] + 0.1
    assert all(report["oracle"][f"auc_{reaction}"] > 0.5 for reaction in REACTIONS)


def test_serving() -> None:
    # After test_ranking, which trains (and caches apart) the same one-epoch network on the same world.
    report = run("serving.py", "--scale", "small", "--epochs", "1", "--min-candidates", "300", "--requests", "10",
                 "--repeats", "1", "--no-load")
    assert_finite(report)
    assert "load" not in report and "chapter1" not in report
    assert (report["scale"], report["epochs"], report["min_candidates"]) == ("small", 1, 300)
    entries = (("float32", report), ("int8", report["quantized"]), ("store path", report["store_path"]),
               ("chapter 6", report["chapter6"]))
    for name, entry in entries:
        assert_latency(entry, name)
        assert entry["requests"] == 10 and entry["repeats"] == 1
        assert {"candidate generation", "light ranking", "features", "ranking", "re-ranking",
                "server total"} <= set(entry["stages"]), name
        for stage, row in entry["stages"].items():
            assert_latency(row, f"{name}, {stage}")
        assert entry["stages"]["server total"]["p50_ms"] == entry["p50_ms"]
        assert entry["stages"]["ranking"]["p50_ms"] < entry["p50_ms"]
        assert entry["worst_run_p99_ms"] >= entry["p99_ms"]
    assert report["min_candidates"] <= report["candidates"] and report["min_candidates"] >= 300
    for entry in (report, report["quantized"]):
        assert 0 <= entry["quality"]["ndcg@10"] <= 1
        assert all(0.5 < entry["quality"][f"auc_{reaction}"] <= 1 for reaction in ("click", "like", "share"))
    assert report["budget"]["server_p99_ms"] > report["budget"]["ranking_p99_ms"] > 0
    assert report["budget"]["server_within"] == (report["p99_ms"] <= report["budget"]["server_p99_ms"])
    # The same requests either way; the store path reads SQLite per request, the online path arrays.
    assert report["store_path"]["candidates"] == report["candidates"]
    assert report["two_tower"] == 1500 and report["chapter6"]["candidates"] <= report["candidates"]
    with_enough, warm = map(int, report["users_with_enough_candidates"].split(" of "))
    assert 0 < with_enough <= warm


def test_retrieval() -> None:
    report = run("retrieval.py", "--scale", "small", "--posts", "10000", "--queries", "20", "--k", "50")
    assert_finite(report)
    assert (report["k"], report["queries"], report["threads"], report["scale"]) == (50, 20, 1, "small")
    assert len(report["sizes"]) == 2 and "10000" in report["sizes"]
    for posts, row in report["sizes"].items():
        assert row["posts"] == int(posts) and row["ivf_cells"] >= 8
        for kind in ("exact", "ivf", "hnsw"):
            assert row[kind]["build_s"] >= 0, (posts, kind)
        assert_latency(row["exact"], f"{posts} exact")
        assert_latency(row["hnsw"], f"{posts} hnsw")
        assert 0 < row["hnsw"]["recall"] <= 1
        probes = sorted(int(probe) for probe in row["ivf"] if probe != "build_s")
        assert probes[0] == 8 and all(probe <= row["ivf_cells"] for probe in probes)
        recalls = [row["ivf"][str(probe)]["recall"] for probe in probes]
        for probe in probes:
            assert_latency(row["ivf"][str(probe)], f"{posts} ivf {probe}")
        # Probing more cells examines a superset of the posts, so it finds at least the same exact neighbours.
        assert all(0 < r <= 1 for r in recalls) and recalls == sorted(recalls), recalls


def test_scale() -> None:
    report = run("scale.py", "--scale", "small", "--copies", "1", "--engines", "duckdb", "--timeout", "240",
                 "--past-memory-copies", "1", "--cap-mb", "3000", "--partitions", "4")
    past = report.pop("past_memory")
    assert_finite(report)
    # Under a cap above what either needs, both finish, and Dask's table is pandas's to the bit.
    assert past["identical"] is True and past["cap_mb"] == 3000 and past["impressions"] > 10_000
    runs = past["runs"]
    assert runs["pandas, no cap"]["finished"] and runs["pandas, capped"]["finished"], runs
    dask = runs["dask, capped"]
    assert dask["finished"] and not dask["killed"] and len(dask["worker_peak_mb"]) == 2
    assert 0 < max(dask["worker_peak_mb"]) < 3000 and dask["driver_peak_mb"] > 0
    assert report["engines"] == ["duckdb"] and report["scale"] == "small"
    [(size, rows)] = report["sizes"].items()
    assert set(rows) == {"duckdb"}
    for engine, row in rows.items():
        assert "error" not in row, (engine, row)
        assert row["rows"] == int(size) > 10_000
        assert row["seconds"] > 0 and row["peak_mb"] > 0 and row["wall_s_with_inputs"] >= row["seconds"]
        assert row["rows_per_second"] == pytest.approx(row["rows"] / row["seconds"])
        assert row["partitions"] is None


def test_scale_names_the_worlds_scales() -> None:
    """scale.py names the scales itself (so that its parent process imports no library): the same ones."""
    from newsfeed.world import SCALES

    spec = importlib.util.spec_from_file_location("benchmark_scale", BENCHMARKS / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SCALES == tuple(SCALES)


def test_world() -> None:
    report = run("world.py", "--scale", "small", "--scales", "small", "--repeats", "1")
    assert_finite(report)
    assert report["realism_scale"] == "small" and set(report["scales"]) == {"small"}
    tables = report["tables"]
    assert all(tables[name] > 0 for name in ("users", "posts", "edges", "sessions", "impressions"))
    assert all(0 < rate < 1 for rate in report["reaction_rates"].values())
    assert report["reaction_rates"]["click"] > report["reaction_rates"]["share"]
    dwell = report["dwell_seconds"]
    assert 0 <= dwell["median"] <= dwell["p90"] <= dwell["p99"] and dwell["mean"] > 0
    assert 0 < report["top1pct_post_engagement_share"] <= 1 and 0 <= report["gini_sessions_per_user"] <= 1
    ctr = report["ctr_by_position"]
    assert list(ctr) == [str(p) for p in range(1, 11)] and ctr["1"] > ctr["10"]  # position bias
    for label, row in report["ndcg@10_last_week"].items():
        assert all(0 <= value <= 1 for value in row.values()), label
        assert row["oracle"] > row["random"], label
    dynamics = report["dynamics_last_week"]
    assert list(dynamics)[0] == "off" and dynamics["off"]["ratio"] == 1.0 and len(dynamics) == 5
    assert all(row["seconds"] > 0 for row in dynamics.values())
    assert report["realism_seconds"] > 0 and report["benchmark_peak_mb"] > 0
    small = report["scales"]["small"]
    assert small["seconds"] > 0 and small["peak_mb"] > 0 and small["people"] == 400
    # The same config in a fresh process (the timing run) generates the same world.
    assert (small["posts"], small["impressions"]) == (tables["posts"], tables["impressions"])
    harmful = report["scales_with_chapter_11"]["small"]  # chapter 11's mechanisms add the burst's posts
    assert harmful["seconds"] > 0 and harmful["posts"] == small["posts"] + 300


def test_notebooks() -> None:
    report = run("notebooks.py", "--chapters", "00_framework")
    assert_finite(report)
    assert list(report["chapters"]) == ["00_framework"]
    seconds = report["chapters"]["00_framework"]
    assert 0 < seconds < report["chapter_budget_seconds"] and report["total_seconds"] == seconds
    assert report["chapters_over_budget"] == [] and report["within_budgets"] is True
    assert report["cpus"] >= 1


def test_notebooks_names_what_it_accepts() -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / "notebooks.py"), "--chapters", "99_nothing"], cwd=ROOT,
                          env={**os.environ, **ENV}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--chapters=99_nothing is invalid: --chapters accepts notebooks of chapters/: 00_framework" in done.stderr


def test_the_capacity_client_offers_its_rate_and_counts_what_a_service_refuses() -> None:
    """The capacity curve's open-loop client (``serving.load``, which serving.py and chapter 6 use) against a local
    server that answers the first requests and refuses the rest with 503, as the service does beyond its connection
    limit: every request is sent on time and counted."""
    import http.server
    import threading

    from newsfeed.serving import load as module

    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            served.append(self.path)
            self.send_response(200 if len(served) <= 10 else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        point = module.offered_load([f"http://127.0.0.1:{server.server_port}"], [3, 4], rate=20, seconds=1.0)
    finally:
        server.shutdown()
    assert point["requests"] == 20 == len(served) and point["errors"] == 10
    assert all(path.startswith("/feed/") and path.endswith("?limit=10") for path in served)
    assert 0.9 <= point["seconds"] <= 3 and 0 < point["p50_ms"] <= point["p99_ms"]
    kept = {"offered_per_second": 10.0, "achieved_per_second": 9.8, "errors": 0}
    fell_behind = {"offered_per_second": 20.0, "achieved_per_second": 15.0, "errors": 0}
    refused = {"offered_per_second": 30.0, "achieved_per_second": 29.0, "errors": 3}
    assert module.knee([kept, fell_behind, refused]) == 10.0 and module.knee([refused]) == 0.0
