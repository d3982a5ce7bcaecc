"""Point-in-time aggregates: what the log said about a post, an author, a user and their pairs *before* a
request.

Every aggregate is an as-of join (``pandas.merge_asof`` with ``allow_exact_matches=False``) of the request
times against running sums of the log, so the same code computes features for training rows (the impressions
themselves) and for serving requests (any user, post and time): one definition, no training–serving skew.
``AsOfIndex`` answers the same joins for many small batches by binary search (tested equal, to the bit).

``AGGREGATES`` lists them as data: which table they count, by which keys, which values, and the column prefix.
``LogAggregates`` computes them from a log in memory; the serving chapter's feature store materializes the
same tables into a database. Both satisfy ``AggregateSource``, the one thing ``feature_table`` reads them
through, so a third backend (a distributed engine) only has to implement that protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import pandas as pd

from newsfeed.metrics import engagement_score
from newsfeed.validation import require, require_columns
from newsfeed.world import REACTIONS

#: A column of numbers: smoothed rates work the same on pandas Series and numpy arrays.
ArrayLike = TypeVar("ArrayLike", pd.Series, np.ndarray)

#: How fast user–author affinity forgets: an interaction a week ago counts ``1/e`` of one today.
AFFINITY_DECAY_HOURS = 168.0


@dataclass(frozen=True)
class AggregateSpec:
    """One table of running sums: ``values`` counted per ``keys`` over ``source``, columns named ``prefix`` +
    value.

    ``source`` is ``"log"`` (impressions, with each post's author, topic and media type joined) or ``"posts"``
    (what each user wrote, keyed by the author as ``user_id``). Values of the log: ``impressions`` (one per
    row), ``engagement`` (the weighted engagement, negatives clipped to 0), ``engagement_growth`` (the same times
    ``exp(hours / decay_hours)``, which ``LogAggregates`` turns into an exponentially decayed sum), ``dwell``
    (seconds) and each reaction's count; of the posts: ``posts`` (one per post).
    """

    source: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    prefix: str


AGGREGATES: tuple[AggregateSpec, ...] = (
    AggregateSpec("log", ("post_id",), ("impressions", "engagement", *REACTIONS), "post_"),
    AggregateSpec("log", ("author_id",), ("impressions", "engagement"), "author_"),
    AggregateSpec("log", ("user_id",), ("impressions", "engagement", "click", "like", "dwell"), "user_"),
    AggregateSpec("log", ("user_id", "author_id"), ("impressions", "engagement", "engagement_growth"),
                  "user_author_"),
    AggregateSpec("log", ("user_id", "topic"), ("impressions", "engagement", "click", "like"), "user_topic_"),
    AggregateSpec("log", ("user_id", "media_type"), ("impressions", "engagement", "click"), "user_media_"),
    AggregateSpec("posts", ("user_id",), ("posts",), "user_written_"),
    AggregateSpec("posts", ("user_id", "topic"), ("posts",), "user_written_topic_"),
)


class AggregateSource(Protocol):
    """What ``feature_table`` reads aggregates through: ``LogAggregates`` (in memory, any request time) and the
    feature store's view (a database, requests at or after its snapshot) both provide it."""

    #: Per post (indexed by ``post_id``): ``author_id``, ``topic``, ``media_type``, ``created_at``,
    #: ``has_text``, ``n_hashtags``: what never changes about a post.
    post_static: pd.DataFrame

    def aggregates(self, requests: pd.DataFrame) -> pd.DataFrame:
        """The aggregate columns for (user_id, post_id, timestamp) requests, in their row order."""
        ...


@dataclass(frozen=True)
class PrecomputedAggregates:
    """Aggregates computed elsewhere for a batch of requests (by a feature store's lookups, by a cluster), as an
    ``AggregateSource``: ``feature_table`` reads them for those requests, or any subset of their rows."""

    answer: pd.DataFrame
    post_static: pd.DataFrame

    def aggregates(self, requests: pd.DataFrame) -> pd.DataFrame:
        require("requests", "rows the aggregates were not computed for", requests.index.isin(self.answer.index).all(),
                "the requests (or a subset of the rows) whose aggregates were computed")
        return self.answer.loc[requests.index]


def running_sums(log: pd.DataFrame, keys: list[str], values: dict[str, pd.Series]) -> pd.DataFrame:
    """Running sums of ``values`` per ``keys`` over the log, in time order: what an as-of join
    reads."""
    cumulative = log[keys + ["timestamp"]].copy()
    for name, series in values.items():
        cumulative[name] = series.to_numpy()
    cumulative = cumulative.sort_values("timestamp", kind="stable")
    for name in values:
        cumulative[name] = cumulative.groupby(keys, sort=False)[name].cumsum()
    return cumulative


def as_of_join(requests: pd.DataFrame, cumulative: pd.DataFrame, keys: list[str],
               prefix: str) -> pd.DataFrame:
    """For each request row, the running sums of the last log row with the same ``keys`` strictly
    before the request's ``timestamp``. Missing history gives 0."""
    left = requests[keys + ["timestamp"]].reset_index().sort_values("timestamp", kind="stable")
    # Any datetime resolution on either side: the join compares like with like.
    left["timestamp"] = left["timestamp"].astype(cumulative["timestamp"].dtype)
    joined = pd.merge_asof(left, cumulative, on="timestamp", by=keys, allow_exact_matches=False,
                           direction="backward")
    values = [c for c in cumulative.columns if c not in (*keys, "timestamp")]
    joined = joined.set_index("index").reindex(requests.index)
    return joined[values].fillna(0.0).add_prefix(prefix)


@dataclass(frozen=True)
class AsOfIndex:
    """A ``running_sums`` table prepared once for many as-of joins: ``join`` answers exactly what ``as_of_join``
    does (the same rows, the same numbers), by one binary search per request instead of a merge. A policy
    serving a simulation joins every hourly batch against tables that keep growing after its snapshot (posts
    written, follows made), where ``merge_asof``'s fixed cost per call dominates.

    Each row's key is coded as in ``KeyedTotals``; its time as the rank among the table's distinct times, so
    (key, time) sorts as one integer and "the last row of this key strictly before t" is one ``searchsorted``.
    """

    keys: tuple[str, ...]
    levels: tuple[pd.Index, ...]
    times: np.ndarray  # the table's distinct times, sorted, as integers of its own resolution
    time_dtype: np.dtype
    combined: np.ndarray  # each row's key code * (len(times) + 1) + time rank, sorted
    codes: np.ndarray  # each row's key code, in the same order
    values: np.ndarray  # the running sums, in the same order
    columns: tuple[str, ...]

    @classmethod
    def of(cls, cumulative: pd.DataFrame, keys: list[str]) -> AsOfIndex:
        levels = tuple(pd.Index(cumulative[key].unique()) for key in keys)
        codes = KeyedTotals._combined(levels, [cumulative[key] for key in keys])
        stamps = cumulative["timestamp"].to_numpy().view(np.int64)
        times, rank = np.unique(stamps, return_inverse=True)
        require("cumulative", "too many keys and times to code as one integer",
                np.prod([max(len(level), 1) for level in levels], dtype=float) * (len(times) + 1) < 2.0**62,
                "a running_sums table with fewer than 2**62 (key, time) pairs")
        combined = codes * (len(times) + 1) + rank
        order = np.argsort(combined, kind="stable")  # ties keep the table's time order: the last is the latest
        columns = tuple(c for c in cumulative.columns if c not in (*keys, "timestamp"))
        return cls(tuple(keys), levels, times, cumulative["timestamp"].dtype, combined[order], codes[order],
                   cumulative[list(columns)].to_numpy(dtype=float)[order], columns)

    def join(self, requests: pd.DataFrame, prefix: str) -> pd.DataFrame:
        """``as_of_join(requests, cumulative, keys, prefix)`` for the table this index was built from."""
        codes = KeyedTotals._combined(self.levels, [requests[key] for key in self.keys])
        asked = requests["timestamp"].astype(self.time_dtype).to_numpy().view(np.int64)
        # Rows strictly before each request: those whose time ranks below the request's first time >= it.
        before = np.searchsorted(self.times, asked, side="left")
        row = np.searchsorted(self.combined, codes * (len(self.times) + 1) + before, side="left") - 1
        found = (codes >= 0) & (row >= 0) & (self.codes[np.maximum(row, 0)] == codes)
        out = np.zeros((len(requests), len(self.columns)))
        out[found] = self.values[row[found]]
        out[np.isnan(out)] = 0.0  # as as_of_join's fillna: a running sum that met a missing value
        return pd.DataFrame(out, index=requests.index,
                            columns=[prefix + c for c in self.columns])


def _hours(times: pd.Series, origin: pd.Timestamp) -> pd.Series:
    """Hours from ``origin`` to each time."""
    return (times - origin) / pd.Timedelta(hours=1)


def post_static(posts: pd.DataFrame) -> pd.DataFrame:
    """What never changes about a post, indexed by ``post_id``: computed once rather than per request."""
    require_columns("posts", posts, ["post_id", "author_id", "topic", "media_type", "created_at", "text",
                                     "hashtags"])
    return posts.set_index("post_id")[["author_id", "topic", "media_type", "created_at"]].assign(
        has_text=posts["text"].notna().to_numpy(dtype=float),
        n_hashtags=posts["hashtags"].fillna("").str.split().str.len().to_numpy(dtype=float))


@dataclass(frozen=True)
class AggregateInputs:
    """What every engine of the aggregates starts from: each post's static attributes, the event tables
    (``"log"``: each impression with its post's author, topic and media type and one column per value of
    ``AggregateSpec``; ``"posts"``: who wrote which post, the author as ``user_id``), the time origin of the
    decayed engagement, and its decay."""

    post_static: pd.DataFrame
    sources: dict[str, pd.DataFrame]
    origin: pd.Timestamp
    decay_hours: float


def aggregate_inputs(log: pd.DataFrame, posts: pd.DataFrame,
                     decay_hours: float = AFFINITY_DECAY_HOURS) -> AggregateInputs:
    """The event tables the running sums are taken over (see ``AggregateInputs``)."""
    require_columns("log", log, ["user_id", "post_id", "timestamp", *REACTIONS, "dwell_seconds"])
    static = post_static(posts)
    log = log.join(static[["author_id", "topic", "media_type"]], on="post_id")
    engaged = engagement_score(log).clip(lower=0.0)
    origin = log["timestamp"].min() if len(log) else pd.Timestamp("2000-01-01")
    growth = np.exp(_hours(log["timestamp"], origin).to_numpy() / decay_hours)
    events = log.assign(impressions=1.0, engagement=engaged, engagement_growth=engaged * growth,
                        dwell=log["dwell_seconds"], **{r: log[r].astype(float) for r in REACTIONS})
    written = posts.rename(columns={"author_id": "user_id", "created_at": "timestamp"}).assign(posts=1.0)
    return AggregateInputs(static, {"log": events, "posts": written}, origin, decay_hours)


class LogAggregates:
    """The running sums of an impression log (and of who wrote which post), ready for as-of joins.

    Building it sorts and accumulates the log once, one table per ``AGGREGATES`` entry; ``aggregates`` then
    answers any batch of requests with joins only, which is what a ranker calling it for every feed request
    needs. The (user, author) engagement is also exponentially decayed with ``decay_hours``.
    """

    def __init__(self, log: pd.DataFrame, posts: pd.DataFrame, decay_hours: float = AFFINITY_DECAY_HOURS) -> None:
        inputs = aggregate_inputs(log, posts, decay_hours)
        self.post_static = inputs.post_static
        self.post_info = self.post_static[["author_id", "topic", "media_type"]]
        self.decay_hours, self.origin = decay_hours, inputs.origin
        self.tables = []
        for spec in AGGREGATES:
            events = inputs.sources[spec.source]
            sums = running_sums(events, list(spec.keys), {v: events[v] for v in spec.values})
            self.tables.append((list(spec.keys), sums, spec.prefix))
        self.last_events = [table["timestamp"].max() if len(table) else pd.Timestamp.min
                            for _, table, _ in self.tables]
        self._totals: list[KeyedTotals] | None = None
        self._indexes: dict[int, AsOfIndex] = {}

    def _totals_by_key(self) -> list[KeyedTotals]:
        """Each table's final running sums per key: the answer for any request after the last event."""
        if self._totals is None:
            self._totals = [KeyedTotals.of(totals_by_key(table, keys)) for keys, table, _ in self.tables]
        return self._totals

    def _index(self, table: int) -> AsOfIndex:
        """The as-of index of ``self.tables[table]``, built the first time a request needs it."""
        if table not in self._indexes:
            keys, sums, _ = self.tables[table]
            self._indexes[table] = AsOfIndex.of(sums, keys)
        return self._indexes[table]

    def aggregates(self, requests: pd.DataFrame) -> pd.DataFrame:
        """History features for (user_id, post_id, timestamp) requests, in their row order."""
        req = with_post_info(requests, self.post_info)
        first_request = req["timestamp"].min() if len(req) else pd.Timestamp.min
        parts = []
        for (keys, table, prefix), totals, last in zip(self.tables, self._totals_by_key(), self.last_events,
                                                      strict=True):
            if first_request > last:
                # Every request comes after this table's last event (serving from a snapshot): the as-of join
                # reduces to a lookup of each key's totals, much faster for many small batches.
                found = totals.lookup([req[key].to_numpy() for key in keys])
                parts.append(pd.DataFrame(found, index=req.index, columns=[prefix + c for c in totals.columns]))
            elif len(req) * 4 < len(table):
                # A batch much smaller than the table (a serving batch): the index, built once, answers it by
                # binary search; a merge would cost a pass over the whole table per batch.
                parts.append(self._index(len(parts)).join(req, prefix))
            else:
                parts.append(as_of_join(req, table, keys, prefix))
        return decay_affinity(pd.concat(parts, axis=1), req["timestamp"], self.origin, self.decay_hours)


def totals_by_key(sums: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Each key's last running sums in ``sums`` (a ``running_sums`` table, or the rows of it before a
    snapshot): its totals over every event, indexed by the key."""
    return sums.groupby(keys, sort=True).last().drop(columns="timestamp")


@dataclass(frozen=True)
class KeyedTotals:
    """Each key's totals (a ``totals_by_key`` table) as one array, found for a batch of requests by one hash
    lookup of a combined integer key: the snapshot answer of ``LogAggregates``, which a policy serving a
    simulation asks for every hourly batch (a ``reindex`` on a MultiIndex costs ten times more)."""

    levels: tuple[pd.Index, ...]  # each key column's values; a key is coded by its position in its level
    codes: pd.Index  # each row's combined code
    values: np.ndarray  # one row per key, one column per total
    columns: tuple[str, ...]

    @classmethod
    def of(cls, totals: pd.DataFrame) -> KeyedTotals:
        index = totals.index
        levels = tuple(pd.Index(index.get_level_values(i).unique()) for i in range(index.nlevels))
        codes = cls._combined(levels, [index.get_level_values(i) for i in range(index.nlevels)])
        return cls(levels, pd.Index(codes), totals.to_numpy(dtype=float), tuple(totals.columns))

    @staticmethod
    def _combined(levels: tuple[pd.Index, ...], keys: list[ArrayLike | pd.Index]) -> np.ndarray:
        """One int64 code per row (-1 where any key is unknown): the positions in each level, mixed-radix."""
        code = np.zeros(len(keys[0]), dtype=np.int64)
        unknown = np.zeros(len(keys[0]), dtype=bool)
        for level, key in zip(levels, keys, strict=True):
            position = level.get_indexer(key)
            unknown |= position < 0
            code = code * max(len(level), 1) + position
        return np.where(unknown, -1, code)

    def lookup(self, keys: list[np.ndarray]) -> np.ndarray:
        """The totals of each row's key (one array per key column), 0 for a key with no events."""
        rows = self.codes.get_indexer(self._combined(self.levels, keys))
        if not len(self.values):
            return np.zeros((len(rows), len(self.columns)))
        found = self.values[rows]
        found[rows < 0] = 0.0
        return found


def with_post_info(requests: pd.DataFrame, post_info: pd.DataFrame) -> pd.DataFrame:
    """(user_id, post_id, timestamp) requests with their post's author, topic and media type (``post_info``,
    indexed by post): every engine of the aggregates starts from this."""
    require_columns("requests", requests, ["user_id", "post_id", "timestamp"])
    return requests[["user_id", "post_id", "timestamp"]].join(post_info, on="post_id")


def followers_as_of(edges: pd.DataFrame, when: pd.Timestamp) -> pd.Series:
    """Each account's followers (friends and followers: every edge pointing at it) made before ``when``."""
    return edges[edges["created_at"] < when].groupby("target_id").size().rename("followers")


def follower_sums(edges: pd.DataFrame) -> AsOfIndex:
    """Each account's running count of followers (friends and followers: every edge pointing at it) over the
    follow graph, in time order, indexed for as-of joins: what ``followers_at`` reads. Computed once, it serves
    any number of batches."""
    made = edges.rename(columns={"target_id": "author_id", "created_at": "timestamp"})
    sums = running_sums(made, ["author_id"], {"followers": pd.Series(1.0, index=made.index)})
    return AsOfIndex.of(sums, ["author_id"])


def followers_at(sums: AsOfIndex, author_id: np.ndarray, times: pd.Series) -> np.ndarray:
    """Each author's followers (from ``follower_sums``) as of each time: edges made later are the future."""
    asked = pd.DataFrame({"author_id": author_id, "timestamp": times})
    return sums.join(asked, "")["followers"].to_numpy()


def decay_affinity(out: pd.DataFrame, times: pd.Series, origin: pd.Timestamp, decay_hours: float) -> pd.DataFrame:
    """Turn the (user, author) engagement growth sum into the exponentially decayed engagement as of each
    request's time (every engine of the aggregates ends with this)."""
    shrink = np.exp(-_hours(times, origin).to_numpy() / decay_hours)
    out["user_author_engagement_decayed"] = out.pop("user_author_engagement_growth") * shrink
    return out


def smoothed_rate(count: ArrayLike, exposures: ArrayLike, prior_rate: float | ArrayLike,
                  prior_weight: float = 10.0) -> ArrayLike:
    """``(count + prior_rate * prior_weight) / (exposures + prior_weight)``: a rate that starts at the prior and
    trusts the data as exposures accumulate (additive smoothing)."""
    return (count + prior_rate * prior_weight) / (exposures + prior_weight)
