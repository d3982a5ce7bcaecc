"""The online feature path: what the feature store holds, loaded once into arrays, so that a feed request reads
only what depends on it.

The store (``store.FeatureStore``) is where the batch job writes; reading it per request costs a SQLite query per
table and a frame per answer, more than half of a request. ``OnlineFeatures`` loads it when the service starts:
every post's row (its static attributes, its counters, its author's counters and follower count) is ready as
arrays indexed by post, each user's rows of the (user, key) tables are one contiguous slice of sorted arrays, and
each user's edges one small frame. A request then gathers the candidates' post rows, finds the user's slices once,
and looks up only the user x post crosses (author, topic, media type) per candidate; ``features.feature_table``
combines them, the same code that built the training data, so the table equals the store path's to the bit
(``tests/test_serving.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from newsfeed import features
from newsfeed.features.aggregates import decay_affinity
from newsfeed.features.table import _pair_key  # the training table's key for (user, account) pairs
from newsfeed.serving.store import FeatureStore, _table_name
from newsfeed.validation import require

#: The columns of a post's static row, in the order ``FeatureStore.post_static`` gives them.
POST_STATIC = ("author_id", "topic", "media_type", "created_at", "has_text", "n_hashtags")


@dataclass(frozen=True)
class _UserSlices:
    """One (user_id, key) table as arrays sorted by user, then key: a user's rows are one slice."""

    users: np.ndarray  # each row's user, sorted
    keys: np.ndarray  # each row's second key, coded as an integer (an id, or a category's position)
    values: np.ndarray  # one column per total
    columns: tuple[str, ...]  # the totals' names, with the table's prefix

    def of(self, user: int, wanted: np.ndarray) -> np.ndarray:
        """The user's totals for each of ``wanted`` keys (0 for a key the user has no row for)."""
        lo, hi = np.searchsorted(self.users, [user, user + 1])
        at, found = _find_sorted(self.keys[lo:hi], wanted)
        out = np.zeros((len(wanted), len(self.columns)))
        out[found] = self.values[lo + at[found]]
        return out


def _find_sorted(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` is in the sorted ``keys`` (a valid position even when absent) and whether it is
    there: one binary search per value."""
    at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    found = keys[at] == wanted if len(keys) else np.zeros(len(wanted), dtype=bool)
    return at, found


class OnlineFeatures:
    """The feature store's tables as arrays in memory, for requests at the store's snapshot time.

    ``table(user, post_ids, device)`` returns what ``features.feature_table`` returns for those requests
    from the store's view, with the posts' text embeddings joined (``FeedServer.features``' table).
    """

    def __init__(self, store: FeatureStore, users: pd.DataFrame, text: pd.DataFrame) -> None:
        self.now = store.snapshot
        self.origin, self.decay_hours = store.origin, store.decay_hours
        static = pd.read_sql("SELECT * FROM post_static", store.connection).set_index("post_id")
        static["created_at"] = pd.to_datetime(static["created_at_ns"].astype("int64"))
        self.post_static = static[list(POST_STATIC)].astype({"topic": object, "media_type": object})
        self.posts = pd.Index(self.post_static.index)
        # The categories of the (user, topic) and (user, media type) keys, coded by position.
        self.levels = {"topic": pd.Index(sorted(set(static["topic"]))),
                       "media_type": pd.Index(sorted(set(static["media_type"])))}
        codes = {"post_id": np.arange(len(self.posts)),
                 "author_id": self.post_static["author_id"].to_numpy(dtype=np.int64),
                 **{name: level.get_indexer(static[name]) for name, level in self.levels.items()}}
        self.codes = codes  # each post's code for every second key
        self.per_post: dict[str, np.ndarray] = {}  # totals of the post and of its author, one row per post
        self.per_user: list[tuple[list[str], np.ndarray, pd.Index]] = []  # (columns, values, users) per table
        self.slices: list[tuple[str, _UserSlices]] = []  # (second key, table) per (user_id, key) table
        for keys, prefix, values in store.specs:
            frame = pd.read_sql(f"SELECT * FROM {_table_name(prefix)}", store.connection)
            names = [prefix + v for v in values]
            if keys == ["user_id"]:
                self.per_user.append((names, frame[values].to_numpy(dtype=float), pd.Index(frame["user_id"])))
            elif len(keys) == 1:  # post_id or author_id: one row per post
                at = pd.Index(frame[keys[0]]).get_indexer(self.post_static.index if keys[0] == "post_id"
                                                         else self.post_static["author_id"])
                found = frame[values].to_numpy(dtype=float)[np.maximum(at, 0)]
                found[at < 0] = 0.0
                self.per_post.update({name: found[:, j] for j, name in enumerate(names)})
            else:
                second = keys[1]
                code = (self.levels[second].get_indexer(frame[second]) if second in self.levels
                        else frame[second].to_numpy(dtype=np.int64))
                order = np.lexsort((code, frame["user_id"].to_numpy()))
                self.slices.append((second, _UserSlices(frame["user_id"].to_numpy(dtype=np.int64)[order],
                                                        code[order], frame[values].to_numpy(dtype=float)[order],
                                                        tuple(names))))
        followers = dict(store.connection.execute("SELECT target_id, n FROM followers").fetchall())
        self.followers = np.array([float(followers.get(int(a), 0)) for a in codes["author_id"]])
        edges = pd.read_sql("SELECT * FROM edges", store.connection)
        edges["created_at"] = pd.to_datetime(edges.pop("created_at_ns").astype("int64"))
        self.edges = {int(user): rows.reset_index(drop=True) for user, rows in edges.groupby("user_id")}
        self._no_edges = edges.iloc[:0]
        # Each (user, account) edge made before the snapshot, as one sorted 64-bit key, and its type: the source
        # of a candidate in the user's graph by one binary search (the first edge of a pair, as the store path).
        known = edges[edges["created_at"] < self.now].drop_duplicates(["user_id", "target_id"])
        pairs = _pair_key(known["user_id"].to_numpy(), known["target_id"].to_numpy())
        order = np.argsort(pairs, kind="stable")
        self.pairs, self.pair_types = pairs[order], known["edge_type"].to_numpy(dtype=object)[order]
        # Text columns as Python objects: feature_table takes a few rows of them per request, and an Arrow string
        # column costs more to convert than the lookup itself (the values are the same).
        self.users = users.astype({c: object for c in users.columns if pd.api.types.is_string_dtype(users[c])})
        self.text_columns = list(text.columns)
        self.text_rows = pd.Index(text.index)
        self.text = text.to_numpy()

    def edges_of(self, user: int) -> pd.DataFrame:
        """The user's own edges, as ``FeatureStore.edges_of`` reads them."""
        return self.edges.get(int(user), self._no_edges)

    def sources(self, user: int, authors: np.ndarray) -> np.ndarray:
        """Each author's relation to the user when the snapshot was taken: "friend", "follow" or "discovery"."""
        at, found = _find_sorted(self.pairs, _pair_key(np.full(len(authors), user), authors))
        return np.where(found, self.pair_types[at] if len(self.pairs) else "discovery", "discovery").astype(object)

    def aggregates(self, user: int, rows: np.ndarray, times: pd.Series) -> pd.DataFrame:
        """``FeatureStore.aggregates`` for the user's requests of the posts at ``rows``: post and
        author totals gathered by row, the user's once, the (user, key) totals from the user's
        slices."""
        columns = {name: values[rows] for name, values in self.per_post.items()}
        for names, values, users in self.per_user:
            at = users.get_indexer([user])[0]
            found = values[at] if at >= 0 else np.zeros(len(names))
            columns.update({name: np.full(len(rows), found[j]) for j, name in enumerate(names)})
        for second, table in self.slices:
            found = table.of(user, self.codes[second][rows])
            columns.update({name: found[:, j] for j, name in enumerate(table.columns)})
        # decay_affinity reads and writes columns by name: a dict of them works as a frame would.
        decayed = decay_affinity(columns, times,  # type: ignore[arg-type]
                                 self.origin, self.decay_hours)
        return pd.DataFrame(decayed, index=times.index)

    def table(self, user: int, post_ids: np.ndarray, device: str) -> pd.DataFrame:
        """The features of the user's requests for ``post_ids`` at the snapshot, with the
        posts' text embeddings."""
        rows = self.posts.get_indexer(post_ids)
        require("post_ids", f"<{len(post_ids)} ids>", bool((rows >= 0).all()),
                "ids of posts the feature store holds")
        authors = self.codes["author_id"][rows]
        requests = serving_requests(user, post_ids, self.now, device, self.sources(user, authors))
        view = features.PrecomputedAggregates(self.aggregates(user, rows, requests["timestamp"]),
                                              self.post_static.iloc[rows])
        table = features.feature_table(requests, self.users, self.edges_of(user), view,
                                       followers=self.followers[rows])
        return with_text(table, self.text, self.text_rows, self.text_columns)


def graph_source(own_edges: pd.DataFrame, authors: np.ndarray, now: pd.Timestamp) -> np.ndarray:
    """Each post's source as in training, from the user's edges made before ``now``: a friend's or a followed
    page's post, or ``"discovery"`` (one from outside the graph)."""
    known = own_edges[own_edges["created_at"] < now]
    relation = known.drop_duplicates("target_id").set_index("target_id")["edge_type"]
    return relation.reindex(authors).fillna("discovery").astype("str").to_numpy()


def serving_requests(user: int, post_ids: np.ndarray, now: pd.Timestamp, device: str,
                     source: np.ndarray) -> pd.DataFrame:
    """The feature requests of one feed request: each candidate at ``now``, at position 1, with its source."""
    return pd.DataFrame({"user_id": user, "post_id": post_ids, "timestamp": pd.Series(now, index=range(len(post_ids))),
                         "device": device, "position": 1, "source": source})


def with_text(table: pd.DataFrame, text: np.ndarray, rows: pd.Index, columns: list[str]) -> pd.DataFrame:
    """The feature table with each post's text embedding (``text``, one row per id of ``rows``) as its last
    columns: what ``table.join(text, on="post_id")`` gives, by array indexing (faster)."""
    found = text[rows.get_indexer(table["post_id"])]
    return pd.concat([table, pd.DataFrame(found, index=table.index, columns=columns)], axis=1)
