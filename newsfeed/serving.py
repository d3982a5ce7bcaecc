"""Serving the feed: candidate generation, a feature store, ranking, re-ranking and a web service.

A feed request runs three stages. **Candidate generation** narrows tens of thousands of posts to a few hundred:
the unseen recent posts of friends and followed pages (the inbox), posts whose text is close to what the user
engaged with lately (embedding nearest neighbours), and trending posts. **Ranking** scores each candidate with
the chapter-4 network, on features read from a **feature store**: the batch aggregates of the log
(``features.History`` totals per key) materialized as of a snapshot time into SQLite tables, then combined at
request time by the same ``features.feature_table`` that built the training data, so the served features equal
the offline ones (no training–serving skew). **Re-ranking** removes posts the user would likely hide and trades
a little expected engagement for author and topic diversity.

``create_app`` wraps a ``FeedServer`` in a FastAPI application (``GET /feed/{user_id}?limit=N``); ``handle``
is the framework-free request handler it calls, so validation is testable without FastAPI installed.
"""

from __future__ import annotations

import copy
import sqlite3
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from newsfeed import features
from newsfeed.metrics import engagement_score
from newsfeed.models import MultiTask, Ranker

#: The start of the test week: the book serves its feeds as of this moment.
SERVE_AT = pd.Timestamp("2026-01-26")
#: The most posts one feed request may ask for.
MAX_LIMIT = 100
#: Candidate sources, in the order the candidate table reports them.
SOURCES: tuple[str, ...] = ("network", "embedding", "trending")


# --------------------------------------------------------------------------------------------------------
# The feature store
# --------------------------------------------------------------------------------------------------------
def _table_name(prefix: str) -> str:
    return prefix.rstrip("_")


class FeatureStore:
    """Batch features in an embedded SQLite database, read at request time.

    ``materialize`` writes, for each running-sum table of a ``features.History``, every key's totals as of
    ``snapshot`` (events strictly before it), plus each post's static attributes. ``aggregates`` answers a
    batch of requests at or after the snapshot with indexed lookups, returning exactly what
    ``History.aggregates`` returns for them.
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
    def materialize(cls, history: features.History, edges: pd.DataFrame, snapshot: str | pd.Timestamp,
                    path: str = ":memory:") -> FeatureStore:
        """Write ``history``'s totals per key as of ``snapshot`` into a SQLite database at ``path``, with the
        graph (``edges``) and each account's follower count."""
        snapshot = pd.Timestamp(snapshot)
        connection = sqlite3.connect(path, check_same_thread=False)
        connection.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
        connection.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("snapshot", snapshot.isoformat()), ("origin", history.origin.isoformat()),
            ("decay_hours", repr(history.decay_hours))])
        connection.execute("CREATE TABLE specs (keys TEXT, prefix TEXT, columns TEXT)")
        for keys, table, prefix in history.tables:
            before = table[table["timestamp"] < snapshot]
            totals = before.groupby(keys, sort=True).last().drop(columns="timestamp").reset_index()
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
        static = history.post_static.reset_index()
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
        """The static attributes of ``post_ids`` (``History.post_static`` rows), indexed by post_id."""
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
        columns and values as ``History.aggregates`` of the log before the snapshot. ``static`` passes the
        requests' ``post_static`` rows when the caller has read them already."""
        needed = {"user_id", "post_id", "timestamp"}
        if missing := needed - set(requests.columns):
            raise ValueError(f"requests is missing columns {sorted(missing)}: requests need user_id, post_id, "
                             "timestamp")
        if len(requests) and requests["timestamp"].min() < self.snapshot:
            raise ValueError(f"requests timestamps before the snapshot {self.snapshot} are invalid: the store "
                             "answers requests at or after its snapshot")
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
        shrink = np.exp(-((requests["timestamp"] - self.origin) / pd.Timedelta(hours=1)).to_numpy()
                        / self.decay_hours)
        frame["user_author_engagement_decayed"] = frame.pop("user_author_engagement_growth") * shrink
        return frame

    def view(self, requests: pd.DataFrame, static: pd.DataFrame | None = None) -> _StoreView:
        """What ``features.feature_table`` needs from a ``History``, answered from the store for ``requests``.
        ``static`` passes the requests' ``post_static`` rows when the caller has read them already."""
        static = static if static is not None else self.post_static(requests["post_id"])
        return _StoreView(self.aggregates(requests, static), static)


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
    counts = edges[edges["created_at"] < snapshot].groupby("target_id").size()
    connection.executemany("INSERT INTO followers VALUES (?, ?)",
                           zip(counts.index.astype(int).tolist(), counts.astype(int).tolist(), strict=True))


@dataclass
class _StoreView:
    """Stands in for a ``features.History`` inside ``features.feature_table``: precomputed answers."""

    answer: pd.DataFrame
    post_static: pd.DataFrame

    def aggregates(self, requests: pd.DataFrame) -> pd.DataFrame:
        return self.answer.loc[requests.index]


# --------------------------------------------------------------------------------------------------------
# Candidate generation
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CandidateConfig:
    """How many candidates each source returns, and over which time windows."""

    window_hours: float = 48.0  # posts older than this are not candidates (the world's inbox window)
    embedding: int = 400  # nearest neighbours of the user's recent engagements, by text embedding
    trending: int = 250  # most engaged posts of the last ``trending_hours``
    trending_hours: float = 24.0
    profile_days: float = 7.0  # engagements that define the user's taste profile

    def validate(self) -> None:
        for name in ("embedding", "trending"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r} is invalid: {name} accepts an integer >= 0")
        for name in ("window_hours", "trending_hours", "profile_days"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: {name} accepts a number > 0")


class CandidateIndex:
    """What candidate generation reads, prepared by a batch job as of ``now``: the follow graph, each user's
    seen posts and taste profile (mean text embedding of recently engaged posts), the recent posts' normalized
    embeddings, and the trending list."""

    def __init__(self, log: pd.DataFrame, posts: pd.DataFrame, edges: pd.DataFrame, text: pd.DataFrame,
                 now: str | pd.Timestamp, config: CandidateConfig | None = None) -> None:
        self.config = config or CandidateConfig()
        self.config.validate()
        self.now = now = pd.Timestamp(now)
        log = log[log["timestamp"] < now]
        known = edges[edges["created_at"] < now]
        self.sources = known.groupby("user_id")["target_id"].agg(lambda s: set(s.tolist())).to_dict()
        self.seen = log.groupby("user_id")["post_id"].agg(lambda s: set(s.tolist())).to_dict()
        window = posts[(posts["created_at"] < now)
                       & (posts["created_at"] >= now - pd.Timedelta(hours=self.config.window_hours))]
        self.recent = window[["post_id", "author_id", "created_at"]].reset_index(drop=True)
        self.recent_author = self.recent["author_id"].to_numpy()
        self.recent_ids = self.recent["post_id"].to_numpy()
        vectors = text.reindex(self.recent_ids).to_numpy(dtype=float)
        self.recent_vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        recent_log = log[log["timestamp"] >= now - pd.Timedelta(days=self.config.profile_days)]
        liked = recent_log[engagement_score(recent_log) > 0]
        unit = text.to_numpy(dtype=float)
        unit = pd.DataFrame(unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12), index=text.index)
        self.profiles = unit.reindex(liked["post_id"]).set_axis(liked["user_id"]).groupby(level=0).mean()
        hot = log[log["timestamp"] >= now - pd.Timedelta(hours=self.config.trending_hours)]
        hot_score = engagement_score(hot).clip(lower=0.0).groupby(hot["post_id"]).sum()
        in_window = hot_score[hot_score.index.isin(self.recent_ids)]
        self.trending_ids = in_window.sort_values(ascending=False, kind="stable").index.to_numpy()

    def _eligible(self, user: int, ids: np.ndarray) -> np.ndarray:
        seen = self.seen.get(user, set())
        authors = self.recent_author[np.searchsorted(self.recent_ids, ids)] if len(ids) else ids
        return ids[[(p not in seen) and (a != user) for p, a in zip(ids.tolist(), authors.tolist(), strict=True)]]

    def network(self, user: int) -> np.ndarray:
        """Unseen posts of the window by the user's friends and followed pages."""
        followed = self.sources.get(user, set())
        ids = self.recent_ids[[a in followed for a in self.recent_author.tolist()]]
        return self._eligible(user, ids)

    def embedding(self, user: int) -> np.ndarray:
        """Unseen posts whose text is most similar to the user's recent engagements (none without any)."""
        if user not in self.profiles.index or self.config.embedding == 0:
            return np.empty(0, dtype=np.int64)
        similarity = self.recent_vectors @ self.profiles.loc[user].to_numpy()
        order = np.argsort(-similarity, kind="stable")
        ids = self._eligible(user, self.recent_ids[order[:self.config.embedding + 50]])
        return ids[:self.config.embedding]

    def trending(self, user: int) -> np.ndarray:
        """The most engaged posts of the last hours that the user has not seen: the same for everyone."""
        ids = self._eligible(user, self.trending_ids[:self.config.trending + 50])
        return ids[:self.config.trending]

    def candidates(self, user: int) -> pd.DataFrame:
        """The union of the sources, one row per post, with the first source that found it."""
        parts = [pd.DataFrame({"post_id": getattr(self, source)(user), "source": source}) for source in SOURCES]
        merged = pd.concat(parts, ignore_index=True).drop_duplicates("post_id", keep="first")
        return merged.sort_values("post_id", kind="stable").reset_index(drop=True)

    def all_eligible(self, user: int) -> np.ndarray:
        """Every unseen post of the window: the pool an oracle would choose from."""
        return self._eligible(user, self.recent_ids)


# --------------------------------------------------------------------------------------------------------
# Re-ranking
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RerankConfig:
    """Business rules applied after the model: drop likely hides, then diversify greedily.

    Each post already chosen from the same author multiplies a candidate's score by ``1 - author_penalty``,
    each from the same topic by ``1 - topic_penalty``; ``freshness_half_life_hours`` (if set) halves the score
    of a post every that many hours of age.
    """

    max_p_hide: float = 0.05
    author_penalty: float = 0.3
    topic_penalty: float = 0.1
    freshness_half_life_hours: float | None = None

    def validate(self) -> None:
        for name in ("max_p_hide", "author_penalty", "topic_penalty"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: {name} accepts a number in [0, 1]")
        half = self.freshness_half_life_hours
        if half is not None and not half > 0:
            raise ValueError(f"freshness_half_life_hours={half!r} is invalid: accepts None or a number > 0")


def rerank(scored: pd.DataFrame, limit: int, config: RerankConfig | None = None) -> pd.DataFrame:
    """The top ``limit`` rows of ``scored`` (columns ``score``, ``p_hide``, ``author_id``, ``topic``,
    ``post_age_hours``) after the re-ranking rules, in feed order."""
    config = config or RerankConfig()
    config.validate()
    rows = scored[scored["p_hide"] <= config.max_p_hide]
    score = rows["score"].to_numpy(dtype=float).copy()
    if config.freshness_half_life_hours is not None:
        score *= 0.5 ** (rows["post_age_hours"].to_numpy(dtype=float) / config.freshness_half_life_hours)
    authors, topics = rows["author_id"].to_numpy(), rows["topic"].to_numpy()
    factor = np.ones(len(rows))
    chosen: list[int] = []
    available = np.ones(len(rows), dtype=bool)
    for _ in range(min(limit, len(rows))):
        best = int(np.argmax(np.where(available, score * factor, -np.inf)))
        chosen.append(best)
        available[best] = False
        factor[authors == authors[best]] *= 1 - config.author_penalty
        factor[topics == topics[best]] *= 1 - config.topic_penalty
    return rows.iloc[chosen]


# --------------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------------
def quantized(ranker: MultiTask) -> MultiTask:
    """A copy of the network with its Linear layers quantized to 8-bit integers (dynamic quantization: weights
    stored as int8, activations quantized on the fly), for a smaller, faster model on CPU."""
    from torch.ao.quantization import quantize_dynamic

    small = copy.copy(ranker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small.network_ = quantize_dynamic(copy.deepcopy(ranker.network_), {torch.nn.Linear}, dtype=torch.qint8)
    small.name = f"{ranker.name} (int8)"
    return small


@dataclass
class FeedServer:
    """Answers feed requests as of ``index.now``: candidates, features from the store, model, re-ranking.

    ``users`` are the cleaned profiles (an entity table the service keeps in memory), ``text`` the posts' text
    embeddings; everything else about the log and the graph is read from the feature store. ``timings``
    holds the last request's seconds per stage.
    """

    ranker: Ranker
    store: FeatureStore
    index: CandidateIndex
    users: pd.DataFrame
    text: pd.DataFrame
    rerank_config: RerankConfig = field(default_factory=RerankConfig)
    timings: dict[str, float] = field(default_factory=dict)
    last_candidates: int = 0

    def __post_init__(self) -> None:
        people = self.users[(self.users["account_type"] == "person") & (self.users["signup_date"] < self.index.now)]
        self.known_users = set(people["user_id"].tolist())
        self._devices = self.users.set_index("user_id")["device"]

    def is_cold(self, user: int) -> bool:
        """No impression logged before the snapshot: nothing to personalize on."""
        return user not in self.index.seen

    def features(self, user: int, post_ids: np.ndarray, device: str | None = None) -> pd.DataFrame:
        """Model features for the user's candidates at ``index.now``, read from the store and combined by
        ``features.feature_table`` (the training code)."""
        device = device if device is not None else self._devices.get(user)
        own_edges = self.store.edges_of(user)
        static = self.store.post_static(post_ids)
        authors = static["author_id"].reindex(post_ids).to_numpy()
        # The source feature as in training: a friend's or a followed page's post, or one from outside the graph,
        # by the edges that exist at serving time.
        known = own_edges[own_edges["created_at"] < self.index.now]
        relation = known.drop_duplicates("target_id").set_index("target_id")["edge_type"]
        source = relation.reindex(authors).fillna("discovery").astype("str").to_numpy()
        requests = pd.DataFrame({"user_id": user, "post_id": post_ids,
                                 "timestamp": pd.Series(self.index.now, index=range(len(post_ids))),
                                 "device": device if isinstance(device, str) else "web", "position": 1,
                                 "source": source})
        view = self.store.view(requests, static)
        # feature_table reads the user's own edges for is_friend / is_follow; follower counts, a batch
        # aggregate over the whole graph, come from the store.
        counts = self.store.followers(authors)
        followers = np.array([counts.get(int(a), 0.0) for a in authors.tolist()])
        table = features.feature_table(requests, None, None, self.users, own_edges, history=view,
                                       followers=followers)
        return table.join(self.text, on="post_id")

    def feed(self, user: int, limit: int = 10) -> pd.DataFrame:
        """The user's ranked feed: ``limit`` posts with their score, p_hide and candidate source."""
        if user not in self.known_users:
            raise KeyError(f"user_id={user!r} is unknown: user_id accepts the id of a person who has signed up")
        clock = time.perf_counter()
        cold = self.is_cold(user)
        candidates = (pd.concat([pd.DataFrame({"post_id": self.index.network(user), "source": "network"}),
                                 pd.DataFrame({"post_id": self.index.trending(user), "source": "trending"})])
                      .drop_duplicates("post_id") if cold else self.index.candidates(user))
        self.timings = {"candidates": time.perf_counter() - clock}
        self.last_candidates = len(candidates)
        clock = time.perf_counter()
        table = self.features(user, candidates["post_id"].to_numpy())
        self.timings["features"] = time.perf_counter() - clock
        clock = time.perf_counter()
        if cold:  # non-personalized: the posts' smoothed engagement rate, and the popularity hide rate
            scored = table.assign(score=table["post_engagement_rate"], p_hide=table["post_hide_rate"])
        else:
            predicted = self.ranker.predict(table)
            scored = table.assign(score=engagement_score(predicted, prefix="p_").to_numpy(),
                                  p_hide=predicted["p_hide"].to_numpy())
        scored["source"] = candidates["source"].to_numpy()
        self.timings["ranking"] = time.perf_counter() - clock
        clock = time.perf_counter()
        top = rerank(scored, limit, self.rerank_config)
        self.timings["re-ranking"] = time.perf_counter() - clock
        self.timings["end to end"] = sum(self.timings.values())
        return top[["post_id", "author_id", "topic", "source", "score", "p_hide"]].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------
# The web service
# --------------------------------------------------------------------------------------------------------
class RequestError(Exception):
    """A request the service refuses, with its HTTP status and a message that says what is accepted."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_request(server: FeedServer, user_id: str, limit: str) -> tuple[int, int]:
    """Validate the raw path and query values; raise ``RequestError`` (4xx) for anything the service refuses."""
    try:
        user = int(user_id)
    except (TypeError, ValueError):
        raise RequestError(422, f"user_id={user_id!r} is invalid: user_id accepts an integer id") from None
    try:
        size = int(limit)
    except (TypeError, ValueError):
        raise RequestError(422, f"limit={limit!r} is invalid: limit accepts an integer from 1 to "
                                f"{MAX_LIMIT}") from None
    if not 1 <= size <= MAX_LIMIT:
        raise RequestError(422, f"limit={size} is invalid: limit accepts an integer from 1 to {MAX_LIMIT}")
    if user not in server.known_users:
        raise RequestError(404, f"user_id={user} is unknown: user_id accepts the id of a person who has signed up")
    return user, size


def handle(server: FeedServer, user_id: str, limit: str = "10") -> tuple[int, dict[str, Any]]:
    """Answer ``GET /feed/{user_id}?limit=N``: (HTTP status, JSON body). Errors are 4xx JSON, never a crash."""
    try:
        user, size = parse_request(server, user_id, limit)
    except RequestError as error:
        return error.status, {"error": error.message}
    feed = server.feed(user, size)
    posts = [{"post_id": int(row.post_id), "author_id": int(row.author_id), "topic": str(row.topic),
              "source": str(row.source), "score": round(float(row.score), 6)} for row in feed.itertuples()]
    return 200, {"user_id": user, "cold_start": server.is_cold(user), "served_at": server.index.now.isoformat(),
                 "posts": posts}


def create_app(server: FeedServer) -> Any:
    """A FastAPI application serving ``GET /feed/{user_id}?limit=N`` from ``server`` (needs ``fastapi``)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI(title="Feed ranking, executed")

    @app.get("/feed/{user_id}")
    def feed(user_id: str, limit: str = "10") -> JSONResponse:
        status, body = handle(server, user_id, limit)
        return JSONResponse(body, status_code=status)

    return app


# --------------------------------------------------------------------------------------------------------
# Latency
# --------------------------------------------------------------------------------------------------------
def latency_table(timings: list[dict[str, float]]) -> pd.DataFrame:
    """p50, p95 and p99 milliseconds per stage over requests' ``FeedServer.timings``."""
    frame = pd.DataFrame(timings) * 1000.0
    return frame.quantile([0.5, 0.95, 0.99]).T.set_axis(["p50_ms", "p95_ms", "p99_ms"], axis=1)


def build_server(ranker: Ranker, dataset: features.Dataset, edges: pd.DataFrame,
                 now: str | pd.Timestamp = SERVE_AT, candidates: CandidateConfig | None = None,
                 rerank_config: RerankConfig | None = None) -> FeedServer:
    """The batch jobs of a serving snapshot (history totals into the feature store, the candidate index) and
    the server that reads them, all as of ``now``."""
    now = pd.Timestamp(now)
    before = dataset.log[dataset.log["timestamp"] < now]
    store = FeatureStore.materialize(dataset.history(before), edges, now)
    index = CandidateIndex(before, dataset.posts, edges, dataset.text, now, candidates)
    return FeedServer(ranker, store, index, dataset.users, dataset.text, rerank_config or RerankConfig())


def measure_latency(server: FeedServer, users: Sequence[int], limit: int = 10,
                    warmup: int = 5) -> tuple[pd.DataFrame, list[int]]:
    """Serve each of ``users`` once (after ``warmup`` untimed requests); per-stage latency percentiles and
    the number of candidates each request ranked."""
    for user in list(users)[:warmup]:
        server.feed(int(user), limit)
    timings, counts = [], []
    for user in users:
        server.feed(int(user), limit)
        timings.append(dict(server.timings))
        counts.append(int(server.last_candidates))
    return latency_table(timings), counts
