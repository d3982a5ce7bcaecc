"""The feature store: the batch aggregates of the log materialized as of a snapshot into SQLite tables, read
at request time with indexed lookups, and the view through which ``features.feature_table`` reads them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from newsfeed import features
from newsfeed.features.aggregates import decay_affinity, followers_as_of, totals_by_key
from newsfeed.validation import require, require_columns


def _table_name(prefix: str) -> str:
    return prefix.rstrip("_")


class FeatureStore:
    """Batch features in an embedded SQLite database, read at request time.

    ``materialize`` writes, for each running-sum table of a ``features.LogAggregates`` (one per
    ``features.AGGREGATES`` entry), every key's totals as of ``snapshot`` (events strictly before it), plus each
    post's static attributes. ``aggregates`` answers a batch of requests at or after the snapshot with indexed
    lookups, returning exactly what ``LogAggregates.aggregates`` returns for them.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        meta = dict(connection.execute("SELECT name, value FROM meta").fetchall())
        self.snapshot = pd.Timestamp(meta["snapshot"])
        self.origin = pd.Timestamp(meta["origin"])
        self.decay_hours = float(meta["decay_hours"])
        self.specs: list[tuple[list[str], str, list[str]]] = []
        for keys, prefix, values in connection.execute("SELECT keys, prefix, columns FROM specs ORDER BY rowid"):
            self.specs.append((keys.split(","), prefix, values.split(",")))

    @classmethod
    def materialize(cls, aggregates: features.LogAggregates, edges: pd.DataFrame, snapshot: str | pd.Timestamp,
                    path: str = ":memory:") -> FeatureStore:
        """Write ``aggregates``' totals per key as of ``snapshot`` into a SQLite database at ``path``, with the
        graph (``edges``) and each account's follower count."""
        snapshot = pd.Timestamp(snapshot)
        connection = sqlite3.connect(path, check_same_thread=False)
        connection.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
        connection.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("snapshot", snapshot.isoformat()), ("origin", aggregates.origin.isoformat()),
            ("decay_hours", repr(aggregates.decay_hours))])
        connection.execute("CREATE TABLE specs (keys TEXT, prefix TEXT, columns TEXT)")
        for keys, table, prefix in aggregates.tables:
            before = table[table["timestamp"] < snapshot]
            totals = totals_by_key(before, keys).reset_index()
            values = [c for c in totals.columns if c not in keys]
            name = _table_name(prefix)
            key_types = ["TEXT" if totals[k].dtype == object or isinstance(totals[k].dtype, pd.StringDtype)
                         else "INTEGER" for k in keys]
            columns = [f"{k} {t} NOT NULL" for k, t in zip(keys, key_types, strict=True)]
            columns += [f"{v} REAL NOT NULL" for v in values]
            connection.execute(f"CREATE TABLE {name} ({', '.join(columns)}, PRIMARY KEY ({', '.join(keys)}))")
            rows = [(*(k if isinstance(k, str) else int(k) for k in row[:len(keys)]),
                     *(float(v) for v in row[len(keys):])) for row in totals.itertuples(index=False)]
            marks = ", ".join("?" * len(totals.columns))
            connection.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
            connection.execute("INSERT INTO specs VALUES (?, ?, ?)", (",".join(keys), prefix, ",".join(values)))
        static = aggregates.post_static.reset_index()
        connection.execute("CREATE TABLE post_static (post_id INTEGER PRIMARY KEY, author_id INTEGER, "
                           "topic TEXT, media_type TEXT, created_at_ns INTEGER, has_text REAL, n_hashtags REAL)")
        created = static["created_at"].astype("datetime64[ns]").astype("int64")
        connection.executemany("INSERT INTO post_static VALUES (?, ?, ?, ?, ?, ?, ?)", zip(
            static["post_id"].astype(int).tolist(), static["author_id"].astype(int).tolist(),
            static["topic"].astype(str).tolist(), static["media_type"].astype(str).tolist(), created.tolist(),
            static["has_text"].astype(float).tolist(), static["n_hashtags"].astype(float).tolist(), strict=True))
        _write_graph(connection, edges, snapshot)
        connection.commit()
        return cls(connection)

    def edges_of(self, user: int) -> pd.DataFrame:
        """The user's own edges (whom they befriended or follow), as ``features.feature_table`` reads them."""
        rows = self.connection.execute("SELECT user_id, target_id, edge_type, created_at_ns FROM edges "
                                       "WHERE user_id = ?", (int(user),)).fetchall()
        frame = pd.DataFrame(rows, columns=["user_id", "target_id", "edge_type", "created_at"])
        frame["created_at"] = pd.to_datetime(frame["created_at"].astype("int64"))
        return frame

    def followers(self, authors: Sequence[int]) -> dict[int, float]:
        """Follower (in-edge) counts of ``authors``; accounts without followers are absent."""
        ids = sorted({int(a) for a in authors})
        sql = f"SELECT target_id, n FROM followers WHERE target_id IN ({', '.join('?' * len(ids))})"
        return {target: float(n) for target, n in self.connection.execute(sql, ids).fetchall()}

    def table_sizes(self) -> pd.Series:
        """Rows per table: what the batch job wrote."""
        names = [_table_name(prefix) for _, prefix, _ in self.specs] + ["post_static", "edges", "followers"]
        return pd.Series({name: self.connection.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
                          for name in names}, name="rows")

    def post_static(self, post_ids: Sequence[int]) -> pd.DataFrame:
        """The static attributes of ``post_ids`` (``features.post_static`` rows), indexed by post_id."""
        ids = sorted({int(p) for p in post_ids})
        rows = self.connection.execute(
            f"SELECT * FROM post_static WHERE post_id IN ({', '.join('?' * len(ids))})", ids).fetchall()
        frame = pd.DataFrame(rows, columns=["post_id", "author_id", "topic", "media_type", "created_at",
                                            "has_text", "n_hashtags"]).set_index("post_id")
        frame["created_at"] = pd.to_datetime(frame["created_at"].astype("int64"))
        return frame

    def _lookup(self, keys: list[str], prefix: str, values: list[str],
                columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
        """The totals of each request's key in one table (0 for a key with no history), by indexed lookups."""
        name = _table_name(prefix)
        wanted = list(zip(*(columns[k] for k in keys), strict=True))
        found: dict[tuple[Any, ...], tuple[float, ...]] = {}
        by_first: dict[Any, set[Any]] = {}
        for key in set(wanted):
            by_first.setdefault(key[0], set()).add(key[1:])
        for first, rest in by_first.items():
            if len(keys) == 1:
                firsts = sorted(by_first)
                sql = f"SELECT * FROM {name} WHERE {keys[0]} IN ({', '.join('?' * len(firsts))})"
                rows = self.connection.execute(sql, firsts).fetchall()
                found.update({tuple(row[:1]): row[1:] for row in rows})
                break
            second = sorted(r[0] for r in rest)
            sql = f"SELECT * FROM {name} WHERE {keys[0]} = ? AND {keys[1]} IN ({', '.join('?' * len(second))})"
            rows = self.connection.execute(sql, [first, *second]).fetchall()
            found.update({tuple(row[:2]): row[2:] for row in rows})
        zeros = (0.0,) * len(values)
        matrix = np.array([found.get(key, zeros) for key in wanted], dtype=float).reshape(len(wanted), len(values))
        return {f"{prefix}{value}": matrix[:, j] for j, value in enumerate(values)}

    def aggregates(self, requests: pd.DataFrame, static: pd.DataFrame | None = None) -> pd.DataFrame:
        """History features for (user_id, post_id, timestamp) requests at or after the snapshot: the same
        columns and values as ``LogAggregates.aggregates`` of the log before the snapshot. ``static`` passes the
        requests' ``post_static`` rows when the caller has read them already."""
        require_columns("requests", requests, ["user_id", "post_id", "timestamp"])
        early = requests["timestamp"].min() if len(requests) else self.snapshot
        require("requests.timestamp", str(early), early >= self.snapshot,
                f"times at or after the store's snapshot {self.snapshot} (it holds no earlier state)")
        static = static if static is not None else self.post_static(requests["post_id"])
        post = static.reindex(requests["post_id"])
        columns: dict[str, list[Any]] = {
            "user_id": requests["user_id"].astype(int).tolist(), "post_id": requests["post_id"].astype(int).tolist(),
            "author_id": post["author_id"].astype(int).tolist(), "topic": post["topic"].astype(str).tolist(),
            "media_type": post["media_type"].astype(str).tolist()}
        out: dict[str, np.ndarray] = {}
        for keys, prefix, values in self.specs:
            out.update(self._lookup(keys, prefix, values, columns))
        frame = pd.DataFrame(out, index=requests.index)
        return decay_affinity(frame, requests["timestamp"], self.origin, self.decay_hours)

    def view(self, requests: pd.DataFrame, static: pd.DataFrame | None = None) -> features.PrecomputedAggregates:
        """What ``features.feature_table`` reads (a ``features.AggregateSource``), answered from the store for
        ``requests``.
        ``static`` passes the requests' ``post_static`` rows when the caller has read them already."""
        static = static if static is not None else self.post_static(requests["post_id"])
        return features.PrecomputedAggregates(self.aggregates(requests, static), static)


def _write_graph(connection: sqlite3.Connection, edges: pd.DataFrame, snapshot: pd.Timestamp) -> None:
    """The edge table (indexed by user) and the follower count per account as of ``snapshot``, as
    ``feature_table`` counts it: every edge pointing at the account made before that time."""
    connection.execute("CREATE TABLE edges (user_id INTEGER, target_id INTEGER, edge_type TEXT, "
                       "created_at_ns INTEGER)")
    created = edges["created_at"].astype("datetime64[ns]").astype("int64")
    connection.executemany("INSERT INTO edges VALUES (?, ?, ?, ?)", zip(
        edges["user_id"].astype(int).tolist(), edges["target_id"].astype(int).tolist(),
        edges["edge_type"].astype(str).tolist(), created.tolist(), strict=True))
    connection.execute("CREATE INDEX edges_user ON edges (user_id)")
    connection.execute("CREATE TABLE followers (target_id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    counts = followers_as_of(edges, snapshot)
    connection.executemany("INSERT INTO followers VALUES (?, ?)",
                           zip(counts.index.astype(int).tolist(), counts.astype(int).tolist(), strict=True))
