"""The point-in-time feature pipeline on other engines: a single-machine SQL engine (DuckDB) and a distributed one
(Dask), each an ``AggregateSource`` that ``features.feature_table`` reads exactly as it reads the in-memory
``LogAggregates``.

The work is chapter 3's: for every request (user, post, time), each aggregate table's running sums of the log
*strictly before* the request, per key (post, author, user, user and author, ...). Both engines get the same
inputs from ``features.aggregate_inputs``, so only the engine differs:

- **DuckDB** computes the running sums with a window function and answers the requests with its native
  ``ASOF JOIN``, on one machine, out of core if it must.
- **Dask** shuffles the log's events and the requests together by each table's first key, so every key's
  whole history lands in one partition, then runs the pandas running sums and as-of join inside each partition,
  on as many workers as the cluster has. ``make_client`` starts a local cluster, or connects to a running
  scheduler when given its address: the same job runs on a laptop or a cluster.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from newsfeed.features.aggregates import (
    AGGREGATES,
    AggregateSpec,
    aggregate_inputs,
    as_of_join,
    decay_affinity,
    running_sums,
    with_post_info,
)
from newsfeed.validation import require, require_int


class DuckDBAggregates:
    """Point-in-time aggregates computed by DuckDB: window sums and ``ASOF JOIN`` (an ``AggregateSource``)."""

    def __init__(self, log: pd.DataFrame, posts: pd.DataFrame, threads: int = 1) -> None:
        import duckdb

        require_int("threads", threads, lo=1)
        inputs = aggregate_inputs(log, posts)
        self.post_static, self.origin, self.decay_hours = inputs.post_static, inputs.origin, inputs.decay_hours
        self.post_info = self.post_static[["author_id", "topic", "media_type"]]
        self.connection = duckdb.connect()
        self.connection.execute(f"SET threads = {threads}")
        for name, frame in inputs.sources.items():
            self.connection.register(f"{name}_events", frame)

    def _one(self, spec: AggregateSpec) -> str:
        """One aggregate table's SQL (names quoted: ``like`` is a keyword)."""
        keys = ", ".join(f'"{k}"' for k in spec.keys)
        sums = ", ".join(f'SUM("{v}") OVER w AS "{v}"' for v in spec.values)
        on = " AND ".join(f'r."{k}" = s."{k}"' for k in spec.keys)
        picked = ", ".join(f'COALESCE(s."{v}", 0.0) AS "{spec.prefix}{v}"' for v in spec.values)
        # RANGE: every event at the same instant gets the same running sum, so the as-of join's pick among
        # ties does not matter; ">" keeps only events strictly before the request, as the pandas join does.
        return (f"WITH s AS (SELECT {keys}, timestamp, {sums} FROM {spec.source}_events "
                f"WINDOW w AS (PARTITION BY {keys} ORDER BY timestamp "
                f"RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) "
                f"SELECT r.row_number, {picked} FROM requests r ASOF LEFT JOIN s "
                f"ON {on} AND r.timestamp > s.timestamp ORDER BY r.row_number")

    def aggregates(self, requests: pd.DataFrame) -> pd.DataFrame:
        """History features for (user_id, post_id, timestamp) requests, in their row order."""
        req = with_post_info(requests, self.post_info).reset_index(drop=True)
        req["row_number"] = np.arange(len(req))
        self.connection.register("requests", req)
        try:
            parts = [self.connection.execute(self._one(spec)).df().drop(columns="row_number")
                     for spec in AGGREGATES]
        finally:
            self.connection.unregister("requests")
        out = pd.concat(parts, axis=1).set_axis(requests.index)
        return decay_affinity(out, requests["timestamp"], self.origin, self.decay_hours)


def make_client(address: str | None = None, workers: int = 2, memory_limit: str = "4GiB") -> Any:
    """A Dask client: to the scheduler at ``address`` (a real cluster), or to a new local cluster of
    ``workers`` single-threaded worker processes. Dask's own log lines are kept to errors, so a notebook shows
    results, not scheduler chatter."""
    from distributed import Client, LocalCluster

    if address is not None:
        return Client(address)
    require_int("workers", workers, lo=1)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           memory_limit=memory_limit, silence_logs=logging.ERROR)
    return Client(cluster)


def tile_log(log: pd.DataFrame, posts: pd.DataFrame, copies: int, n_accounts: int) -> tuple[pd.DataFrame,
                                                                                       pd.DataFrame]:
    """``copies`` copies of a world's log and posts side by side, each shifting every user, author and post id
    by its copy number times the world's, so the copies never share a key: a bigger log that is still a real
    world's traffic, for measuring engines at sizes the world generator would take long to reach."""
    require_int("copies", copies, lo=1)
    logs = [log.assign(user_id=log["user_id"] + i * n_accounts, post_id=log["post_id"] + i * len(posts),
                       impression_id=log["impression_id"] + i * len(log)) for i in range(copies)]
    shifted = [posts.assign(post_id=posts["post_id"] + i * len(posts), author_id=posts["author_id"] + i * n_accounts)
               for i in range(copies)]
    return pd.concat(logs, ignore_index=True), pd.concat(shifted, ignore_index=True)


def write_events(log: pd.DataFrame, posts: pd.DataFrame, folder: str | Path, files: int = 8) -> Path:
    """Write the log's events as a logging pipeline lands them on shared storage: ``features.aggregate_inputs``'
    event tables (``log``, each impression with a ``row_number``, its position in the log, so that the log
    itself can be the requests; ``posts``, who wrote what) as ``files`` Parquet files each, in log order; each
    post's static row; the decay's origin. A cluster's workers read them from there (``DaskAggregates``), so
    no process has to hold the log whole."""
    require_int("files", files, lo=1)
    folder = Path(folder)
    inputs = aggregate_inputs(log, posts)
    events = {"log": inputs.sources["log"].assign(row_number=np.arange(len(log))), "posts": inputs.sources["posts"]}
    for name, frame in events.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        frame = frame[[c for c in EVENT_COLUMNS[name] if c in frame.columns]].reset_index(drop=True)
        bounds = np.linspace(0, len(frame), files + 1).astype(int)
        for i in range(files):  # names sort in log order, which is the order readers take them in
            frame.iloc[bounds[i]:bounds[i + 1]].to_parquet(folder / name / f"part-{i:05d}.parquet", index=False)
    inputs.post_static.to_parquet(folder / "post_static.parquet")
    meta = {"origin": inputs.origin.isoformat(), "decay_hours": inputs.decay_hours, "impressions": len(log)}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def read_events_meta(folder: str | Path) -> dict[str, Any]:
    """What ``write_events`` recorded beside the event files: the decay's ``origin`` and ``decay_hours``, and the
    number of ``impressions``; refuses a folder it did not write."""
    meta = Path(folder) / "meta.json"
    require("events", str(folder), meta.exists(), "a folder written by write_events")
    return json.loads(meta.read_text())


def _table_of(spec: AggregateSpec) -> str:
    """The name an aggregate table's result is written under: its column prefix without the underscore."""
    return spec.prefix.rstrip("_")


#: The columns of each event table the aggregates read (``AGGREGATES``' keys and values, with the time).
EVENT_COLUMNS = {
    source: list(dict.fromkeys([c for spec in AGGREGATES if spec.source == source for c in (*spec.keys, *spec.values)]
                               + ["timestamp"] + (["row_number"] if source == "log" else [])))
    for source in ("log", "posts")}


def _within_partition(part: pd.DataFrame, keys: list[str], values: list[str], prefix: str,
                      decay: tuple[pd.Timestamp, float] | None = None) -> pd.DataFrame:
    """Inside one partition: the running sums of its events, as-of joined to its requests (the
    pandas functions of ``features``, unchanged); with ``decay`` (origin, hours), the decayed
    affinity too."""
    events = part[part["is_event"]]
    cumulative = running_sums(events, keys, {v: events[v] for v in values})
    requests = part[~part["is_event"]].set_index("row_number").rename_axis(None)
    joined = as_of_join(requests, cumulative, keys, prefix)
    if decay is not None and f"{prefix}engagement_growth" in joined.columns:
        return decay_affinity(joined, requests["timestamp"], *decay)
    return joined


def _together(events: Any, requests: Any, keys: list[str], values: list[str]) -> Any:
    """A table's events and the requests in one frame (events first, in log order), flagged apart."""
    events = events[[*keys, "timestamp", *values]].assign(is_event=True, row_number=-1)
    return events, requests[[*keys, "timestamp", "row_number"]].assign(is_event=False)


def log_aggregates_in_one_process(folder: str | Path, out: str | Path) -> Path:
    """What ``DaskAggregates.write_log_aggregates`` does, in one pandas process: every event file read into
    memory, each table's job run on all of it as one partition. The single machine's way, which needs the whole
    log and its running sums in memory at once (chapter 8 runs it under a memory cap)."""
    folder, out = Path(folder), Path(out)
    meta = read_events_meta(folder)
    out.mkdir(parents=True, exist_ok=True)
    tables = {name: pd.read_parquet(folder / name) for name in ("log", "posts")}
    for spec in AGGREGATES:
        keys, values = list(spec.keys), list(spec.values)
        events, asked = _together(tables[spec.source], tables["log"], keys, values)
        both = pd.concat([events, asked], ignore_index=True)
        result = _within_partition(both, keys, values, spec.prefix, (pd.Timestamp(meta["origin"]), meta["decay_hours"]))
        result.to_parquet(out / f"{_table_of(spec)}.parquet")
    return out


class DaskAggregates:
    """Point-in-time aggregates computed by a Dask cluster from event files (an ``AggregateSource``): the
    workers read the Parquet files ``write_events`` wrote, and for each aggregate table shuffle events and
    requests together by the table's first key into ``partitions`` partitions; each partition runs the same
    pandas code as ``LogAggregates``. The result equals it to the last bit: each key's events keep their order,
    so every running sum adds the same numbers in the same order.

    ``aggregates`` answers a batch of requests sent from here; ``write_log_aggregates`` computes every logged
    impression's aggregates and has the workers write them, so that nothing passes through this process."""

    def __init__(self, events: str | Path, client: Any, partitions: int = 8,
                 progress: Callable[[str], None] | None = None) -> None:
        require_int("partitions", partitions, lo=1)
        require("client", type(client).__name__, hasattr(client, "compute"), "a dask.distributed Client")
        self.folder = Path(events)
        meta = read_events_meta(self.folder)
        self.progress = progress  # told each table as it finishes: a line per table, the same on every run
        self.origin, self.decay_hours = pd.Timestamp(meta["origin"]), float(meta["decay_hours"])
        self.post_static = pd.read_parquet(self.folder / "post_static.parquet")
        self.post_info = self.post_static[["author_id", "topic", "media_type"]]
        self.client, self.partitions = client, partitions

    def _jobs(self, requests: Any, decay: bool) -> Any:
        """Each aggregate table's spec and job: a lazy Dask frame of its columns, by request row."""
        import dask.dataframe as dd

        for spec in AGGREGATES:
            keys, values = list(spec.keys), list(spec.values)
            # The workers read the files themselves; nothing passes through this process.
            stored = dd.read_parquet(self.folder / spec.source,
                                     columns=[*keys, "timestamp", *values])
            events, asked = _together(stored, requests, keys, values)
            # The shuffle moves each row to the partition of its first key, so a key's whole
            # history is in one place.
            both = dd.concat([events, asked])
            shuffled = both.shuffle(on=keys[0], npartitions=self.partitions)
            columns = [f"{spec.prefix}{v}" for v in values]
            if decay and "engagement_growth" in values:
                columns = [c.replace("_growth", "_decayed") for c in columns]
            meta = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
            decayed = (self.origin, self.decay_hours) if decay else None
            yield spec, shuffled.map_partitions(_within_partition, keys, values, spec.prefix,
                                                decayed, meta=meta)

    def _done(self, done: int, spec: AggregateSpec) -> None:
        if self.progress is not None:
            self.progress(f"table {done} of {len(AGGREGATES)} done: {spec.prefix} by {', '.join(spec.keys)}")

    def aggregates(self, requests: pd.DataFrame) -> pd.DataFrame:
        """History features for (user_id, post_id, timestamp) requests, in their row order."""
        import dask.dataframe as dd

        req = with_post_info(requests, self.post_info).reset_index(drop=True)
        req["row_number"] = np.arange(len(req))
        asked = dd.from_pandas(req, npartitions=self.partitions, sort=False)
        parts = []
        for spec, job in self._jobs(asked, decay=False):
            # One table at a time: the workers hold one table's events, not all eight at once.
            parts.append(self.client.compute(job, sync=True).sort_index())
            self._done(len(parts), spec)
        out = pd.concat(parts, axis=1).set_axis(requests.index)
        return decay_affinity(out, requests["timestamp"], self.origin, self.decay_hours)

    def write_log_aggregates(self, out: str | Path) -> Path:
        """Every logged impression's aggregates (the log is the requests), written by the workers into
        ``out`` as one Parquet folder per table, indexed by the impression's row number in the log."""
        import dask.dataframe as dd

        out = Path(out)
        log = dd.read_parquet(self.folder / "log", columns=[*EVENT_COLUMNS["log"]])
        for done, (spec, job) in enumerate(self._jobs(log, decay=True), start=1):
            job.to_parquet(out / _table_of(spec), write_index=True)
            self._done(done, spec)
        return out


def read_log_aggregates(out: str | Path) -> pd.DataFrame:
    """The tables ``write_log_aggregates`` (a folder per table) or ``log_aggregates_in_one_process`` (a file per
    table) wrote, side by side, in the log's row order: what ``LogAggregates(log, posts).aggregates(log)`` gives."""
    out = Path(out)
    parts = [pd.read_parquet(out / name if (out / name).is_dir() else out / f"{name}.parquet").sort_index()
             for name in map(_table_of, AGGREGATES)]
    return pd.concat(parts, axis=1).rename_axis(None)  # Dask names an unnamed index when it writes it
