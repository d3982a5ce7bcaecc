"""Serving the feed: candidate generation, a feature store, ranking, re-ranking and a web service.

A feed request runs four stages. **Candidate generation** narrows tens of thousands of posts to about a
thousand: the unseen recent posts of friends and followed pages (the inbox), a two-tower model's nearest
neighbours in an approximate nearest-neighbour index, posts whose text is close to what the user engaged with
lately (text-embedding neighbours), and trending posts. A **light ranker**, the two-tower dot product, keeps the
few hundred best for the heavy ranker. **Ranking** scores each candidate with
the chapter-4 network, on features from a **feature store**: the batch aggregates of the log
(``features.LogAggregates`` totals per key) materialized as of a snapshot time into SQLite tables, loaded into
arrays when the server starts, then combined at request time by the same ``features.feature_table`` that built
the training data, so the served features equal the offline ones (no training–serving skew). **Re-ranking**
removes posts the user would likely hide and trades a little expected engagement for author and topic diversity.

- ``store``: ``FeatureStore``, whose ``view`` is what ``feature_table`` reads;
- ``online``: ``OnlineFeatures``, the store's tables as arrays, so a request reads only what depends on it;
- ``retrieval``: ``TwoTower`` (the two-tower model), ``fit_retrieval`` (trained, or loaded from the cache) and
  ``PostIndex`` (faiss: exact, IVF or HNSW);
- ``candidates``: ``CandidateConfig`` and ``CandidateIndex`` (the four sources, and the light ranker's scores);
- ``rerank``: ``RerankConfig`` and ``rerank``;
- ``server``: ``FeedServer``, ``build_server``, ``quantized`` and latency measurement;
- ``web``: ``create_app`` (FastAPI, ``GET /feed/{user_id}?limit=N``) around the framework-free ``handle``;
- ``load``: the service's capacity curve (``capacity_curve``, ``offered_load``, ``knee``), service processes on
  127.0.0.1 under an open-loop load (imported as ``newsfeed.serving.load``: it starts processes, so nothing
  imports it by accident).
"""

from newsfeed.serving.candidates import SOURCES, CandidateConfig, CandidateIndex
from newsfeed.serving.online import OnlineFeatures
from newsfeed.serving.rerank import RerankConfig, rerank
from newsfeed.serving.retrieval import (
    INDEX_KINDS,
    PostIndex,
    TwoTower,
    TwoTowerConfig,
    fit_retrieval,
    in_batch_softmax_loss,
)
from newsfeed.serving.server import (
    COLD_START,
    COLD_START_POLICIES,
    FEATURE_PATHS,
    MAX_LIMIT,
    FeedServer,
    build_server,
    latency_table,
    measure_latency,
    median_latency,
    quantized,
)
from newsfeed.serving.store import FeatureStore
from newsfeed.serving.web import RequestError, create_app, handle, parse_request

__all__ = ["COLD_START", "COLD_START_POLICIES", "FEATURE_PATHS", "INDEX_KINDS", "MAX_LIMIT", "SOURCES",
           "CandidateConfig", "CandidateIndex", "FeatureStore", "FeedServer", "OnlineFeatures", "PostIndex",
           "RequestError", "RerankConfig", "TwoTower", "TwoTowerConfig", "build_server", "create_app",
           "fit_retrieval", "handle", "in_batch_softmax_loss", "latency_table", "measure_latency", "median_latency",
           "parse_request", "quantized", "rerank"]
