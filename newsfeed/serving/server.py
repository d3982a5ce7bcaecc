"""The feed server: candidates, features from the store, the ranker and re-ranking, as of one snapshot; how it
is built from a dataset, and how its latency is measured."""

from __future__ import annotations

import copy
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
from newsfeed.serving.candidates import CandidateConfig, CandidateIndex
from newsfeed.serving.online import OnlineFeatures, graph_source, serving_requests, with_text
from newsfeed.serving.rerank import RerankConfig, rerank
from newsfeed.serving.retrieval import TwoTower
from newsfeed.serving.store import FeatureStore
from newsfeed.validation import require, require_int

#: The most posts one feed request may ask for.
MAX_LIMIT = 100
#: What a person with no logged history is served: posts ranked by their smoothed engagement rate
#: ("popularity"), the heavy ranker on its priors over the network and trending posts ("ranker"), or the heavy
#: ranker over candidates that add the two-tower's neighbours of what is known at signup ("signup").
COLD_START_POLICIES: tuple[str, ...] = ("popularity", "ranker", "signup")
#: Where a request's features come from: the store's tables loaded as arrays when the server starts
#: (``online.OnlineFeatures``), or read from the store per request (the slower reference, equal to the bit).
FEATURE_PATHS: tuple[str, ...] = ("online", "store")
#: What the service serves a user without history unless told otherwise: the policy chapter 6 measured best
#: (tests/test_serving.py checks that the chapter's choice and this default agree).
COLD_START = "signup"


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
    embeddings; everything else about the log and the graph is read from the feature store. When the index has
    a two-tower model, the **light ranker** (its dot product) keeps the ``light_keep`` best candidates for the
    heavy ranker (``None``: score them all). ``cold_start`` is one of ``COLD_START_POLICIES``, ``feature_path``
    one of ``FEATURE_PATHS``. The server keeps no per-request state: the web service answers on several threads at
    once, so ``serve`` returns each request's timings and candidate count with its feed.
    """

    ranker: Ranker
    store: FeatureStore
    index: CandidateIndex
    users: pd.DataFrame
    text: pd.DataFrame
    rerank_config: RerankConfig = field(default_factory=RerankConfig)
    light_keep: int | None = 300
    cold_start: str = COLD_START
    feature_path: str = "online"

    def __post_init__(self) -> None:
        if self.light_keep is not None:
            require_int("light_keep", self.light_keep, lo=1)
        require("cold_start", self.cold_start, self.cold_start in COLD_START_POLICIES,
                f"one of {', '.join(COLD_START_POLICIES)}")
        require("feature_path", self.feature_path, self.feature_path in FEATURE_PATHS,
                f"one of {', '.join(FEATURE_PATHS)}")
        require("rerank_config", self.rerank_config, isinstance(self.rerank_config, RerankConfig), "a RerankConfig")
        people = self.users[(self.users["account_type"] == "person") & (self.users["signup_date"] < self.index.now)]
        self.known_users = set(people["user_id"].tolist())
        require("store", str(self.store.snapshot), self.store.snapshot == self.index.now,
                f"a feature store materialized at the candidate index's time {self.index.now}")
        self._devices = self.users.set_index("user_id")["device"]
        self.online = OnlineFeatures(self.store, self.users, self.text)

    def is_cold(self, user: int) -> bool:
        """No impression logged before the snapshot: nothing to personalize on."""
        return user not in self.index.seen

    def features(self, user: int, post_ids: np.ndarray, device: str | None = None) -> pd.DataFrame:
        """Model features for the user's candidates at ``index.now``, combined by ``features.feature_table`` (the
        training code) from the ``feature_path``: the store's tables as arrays (``online``), or the store itself."""
        if self.feature_path == "store":
            return self.store_features(user, post_ids, device)
        return self.online.table(user, post_ids, self._device(user, device))

    def store_features(self, user: int, post_ids: np.ndarray, device: str | None = None) -> pd.DataFrame:
        """What ``features`` returns, read from the store per request (SQLite queries, a frame per table): the
        path the online one replaced, kept as its reference (equal to the bit) and for the latency it costs."""
        own_edges = self.store.edges_of(user)
        static = self.store.post_static(post_ids)
        authors = static["author_id"].reindex(post_ids).to_numpy()
        source = graph_source(own_edges, authors, self.index.now)
        requests = serving_requests(user, post_ids, self.index.now, self._device(user, device), source)
        view = self.store.view(requests, static)
        # feature_table reads the user's own edges for is_friend / is_follow; follower counts, a batch
        # aggregate over the whole graph, come from the store.
        counts = self.store.followers(authors)
        followers = np.array([counts.get(int(a), 0.0) for a in authors.tolist()])
        table = features.feature_table(requests, self.users, own_edges, view, followers=followers)
        return with_text(table, self.online.text, self.online.text_rows, self.online.text_columns)

    def _device(self, user: int, device: str | None) -> str:
        """The request's device: as given, else the user's from their profile, else "web"."""
        device = device if device is not None else self._devices.get(user)
        return device if isinstance(device, str) else "web"

    def rank(self, table: pd.DataFrame, popularity: bool = False) -> pd.DataFrame:
        """The candidates' feature table with the server's ``score`` and ``p_hide``: the ranker's expected
        engagement, or with ``popularity`` the posts' smoothed engagement and hide rates."""
        if popularity:
            return table.assign(score=table["post_engagement_rate"], p_hide=table["post_hide_rate"])
        predicted = self.ranker.predict(table)
        return table.assign(score=engagement_score(predicted, prefix="p_").to_numpy(),
                            p_hide=predicted["p_hide"].to_numpy())

    def candidates(self, user: int) -> pd.DataFrame:
        """The request's candidates (``post_id``, ``source``): every source for a user with history; for a cold
        user, the network and trending posts, plus the two-tower's under the "signup" policy."""
        if not self.is_cold(user) or self.cold_start == "signup":
            return self.index.candidates(user)
        return (pd.concat([pd.DataFrame({"post_id": self.index.network(user), "source": "network"}),
                           pd.DataFrame({"post_id": self.index.trending(user), "source": "trending"})])
                .drop_duplicates("post_id").reset_index(drop=True))

    def light_rank(self, user: int, candidates: pd.DataFrame) -> pd.DataFrame:
        """The ``light_keep`` candidates with the best two-tower score (all of them without a light ranker)."""
        if self.light_keep is None or self.index.retrieval is None or len(candidates) <= self.light_keep:
            return candidates
        scores = self.index.light_scores(user, candidates["post_id"].to_numpy())
        keep = np.sort(np.argsort(-scores, kind="stable")[:self.light_keep])
        return candidates.iloc[keep].reset_index(drop=True)

    def feed(self, user: int, limit: int = 10) -> pd.DataFrame:
        """The user's ranked feed: up to ``limit`` posts with their score, p_hide and candidate source."""
        return self.serve(user, limit).posts

    def serve(self, user: int, limit: int = 10) -> Served:
        """The user's feed, with this request's seconds per stage and its number of candidates. A user with no
        candidates at all (nothing new in their network, trending or retrieval) gets an empty feed."""
        require_int("limit", limit, 1, MAX_LIMIT)
        require("user", user, user in self.known_users,
                f"the id of a person who signed up before {self.index.now} (the snapshot being served)")
        clock = time.perf_counter()
        candidates = self.candidates(user)
        timings = {"candidate generation": time.perf_counter() - clock}
        count = len(candidates)
        clock = time.perf_counter()
        candidates = self.light_rank(user, candidates)
        timings["light ranking"] = time.perf_counter() - clock
        if candidates.empty:
            empty = pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in FEED_COLUMNS.items()})
            return Served(empty, {**timings, "server total": sum(timings.values())}, 0)
        clock = time.perf_counter()
        table = self.features(user, candidates["post_id"].to_numpy())
        timings["features"] = time.perf_counter() - clock
        clock = time.perf_counter()
        scored = self.rank(table, popularity=self.is_cold(user) and self.cold_start == "popularity")
        scored["source"] = candidates["source"].to_numpy()
        timings["ranking"] = time.perf_counter() - clock
        clock = time.perf_counter()
        top = rerank(scored, limit, self.rerank_config)
        timings["re-ranking"] = time.perf_counter() - clock
        timings["server total"] = sum(timings.values())  # server-side: no network, no client
        return Served(top[list(FEED_COLUMNS)].reset_index(drop=True), timings, count)


@dataclass(frozen=True)
class Served:
    """One request's answer: the feed, the seconds each stage took, and how many candidates it generated."""

    posts: pd.DataFrame
    timings: dict[str, float]
    candidates: int


#: A feed's columns and their types (an empty feed has them too).
FEED_COLUMNS = {"post_id": "int64", "author_id": "int64", "topic": "object", "source": "object",
                "score": "float64", "p_hide": "float64"}


def latency_table(timings: list[dict[str, float]]) -> pd.DataFrame:
    """p50, p95 and p99 milliseconds per stage over requests' ``FeedServer.timings``."""
    frame = pd.DataFrame(timings) * 1000.0
    return frame.quantile([0.5, 0.95, 0.99]).T.set_axis(["p50_ms", "p95_ms", "p99_ms"], axis=1)


def build_server(ranker: Ranker, dataset: features.Dataset, edges: pd.DataFrame,
                 now: str | pd.Timestamp | None = None, candidates: CandidateConfig | None = None,
                 rerank_config: RerankConfig | None = None, retrieval: TwoTower | None = None,
                 **options: Any) -> FeedServer:
    """The batch jobs of a serving snapshot (aggregate totals into the feature store, the candidate index with
    the ``retrieval`` model's ANN index, if given) and the server that reads them, all as of ``now``: by default
    ``dataset.serve_at``, the start of the test week (everything before it was training data). ``options``
    are ``FeedServer`` fields (``light_keep``, ``cold_start``)."""
    now = dataset.serve_at if now is None else pd.Timestamp(now)
    before = dataset.log[dataset.log["timestamp"] < now]
    store = FeatureStore.materialize(dataset.aggregates(before), edges, now)
    index = CandidateIndex(before, dataset.posts, edges, dataset.text, now, candidates, retrieval)
    return FeedServer(ranker, store, index, dataset.users, dataset.text, rerank_config or RerankConfig(), **options)


def measure_latency(server: FeedServer, users: Sequence[int], limit: int = 10, warmup: int = 5,
                    repeats: int = 1) -> tuple[pd.DataFrame, list[int]]:
    """Serve each of ``users`` once (after ``warmup`` untimed requests), ``repeats`` times over; per-stage
    latency percentiles (each the median over the repeats: one run's tail moves with whatever else the
    machine does) and the number of candidates each request ranked."""
    require_int("repeats", repeats, lo=1)
    for user in list(users)[:warmup]:
        server.serve(int(user), limit)
    tables, counts = [], []
    for _ in range(repeats):
        served = [server.serve(int(user), limit) for user in users]
        tables.append(latency_table([answer.timings for answer in served]))
        counts = [answer.candidates for answer in served]
    return median_latency(tables), counts


def median_latency(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Each stage's percentiles as the median over several runs' ``latency_table``s."""
    return pd.concat(tables).groupby(level=0, sort=False).median()
