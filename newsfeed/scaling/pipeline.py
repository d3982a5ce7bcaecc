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

import logging
from collections.abc import Callable
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


def _within_partition(part: pd.DataFrame, keys: list[str], values: list[str],
                      prefix: str) -> pd.DataFrame:
    """Inside one partition: the running sums of its events, as-of joined to its requests
    (the pandas functions of ``features``, unchanged)."""
    events = part[part["is_event"]]
    cumulative = running_sums(events, keys, {v: events[v] for v in values})
    requests = part[~part["is_event"]].set_index("row_number").rename_axis(None)
    return as_of_join(requests, cumulative, keys, prefix)


class DaskAggregates:
    """Point-in-time aggregates computed by a Dask cluster (an ``AggregateSource``): for each aggregate table,
    events and requests are shuffled together by the table's first key into ``partitions`` partitions, and each
    partition runs the same pandas code as ``LogAggregates``. The result equals it to the last bit: each key's
    events keep their order, so every running sum adds the same numbers in the same order."""

    def __init__(self, log: pd.DataFrame, posts: pd.DataFrame, client: Any, partitions: int = 8,
                 progress: Callable[[str], None] | None = None) -> None:
        require_int("partitions", partitions, lo=1)
        self.progress = progress  # told each table as it finishes: a line per table, the same on every run
        require("client", type(client).__name__, hasattr(client, "compute"), "a dask.distributed Client")
        inputs = aggregate_inputs(log, posts)
        self.post_static, self.origin, self.decay_hours = inputs.post_static, inputs.origin, inputs.decay_hours
        self.post_info = self.post_static[["author_id", "topic", "media_type"]]
        self.sources, self.client, self.partitions = inputs.sources, client, partitions

    def aggregates(self, requests: pd.DataFrame) -> pd.DataFrame:
        """History features for (user_id, post_id, timestamp) requests, in their row order."""
        import dask.dataframe as dd

        req = with_post_info(requests, self.post_info).reset_index(drop=True)
        req["row_number"] = np.arange(len(req))
        parts = []
        for spec in AGGREGATES:
            keys, values = list(spec.keys), list(spec.values)
            events = self.sources[spec.source][[*keys, "timestamp", *values]]
            events = events.assign(is_event=True, row_number=-1)
            asked = req[[*keys, "timestamp", "row_number"]].assign(is_event=False)
            both = pd.concat([events, asked], ignore_index=True)
            # The data goes to the workers once, in pieces; the shuffle then moves each row to the
            # partition of its first key, so a key's whole history is in one place.
            bounds = np.linspace(0, len(both), self.partitions + 1).astype(int)
            pieces = self.client.scatter([both.iloc[bounds[i]:bounds[i + 1]]
                                          for i in range(self.partitions)])
            frame = dd.from_delayed(pieces, meta=both.iloc[:0], verify_meta=False)
            shuffled = frame.shuffle(on=keys[0], npartitions=self.partitions)
            meta = pd.DataFrame({f"{spec.prefix}{v}": pd.Series(dtype=float) for v in values})
            job = shuffled.map_partitions(_within_partition, keys, values, spec.prefix, meta=meta)
            # One table at a time: the workers hold one table's events, not all eight at once.
            parts.append(self.client.compute(job, sync=True).sort_index())
            if self.progress is not None:
                self.progress(f"table {len(parts)} of {len(AGGREGATES)} done: {spec.prefix} by "
                              f"{', '.join(keys)}")
        out = pd.concat(parts, axis=1).set_axis(requests.index)
        return decay_affinity(out, requests["timestamp"], self.origin, self.decay_hours)
