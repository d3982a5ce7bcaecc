"""Candidate generation: narrow tens of thousands of posts to about a thousand per request, from four sources
(the user's network, a two-tower model's nearest neighbours in an ANN index, text-embedding neighbours of
recent engagements, trending posts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from newsfeed.metrics import engagement_score
from newsfeed.serving.retrieval import INDEX_KINDS, PostIndex, TwoTower
from newsfeed.validation import require, require_float, require_int

#: Candidate sources, in the order the candidate table reports them (a post found by two keeps the first).
SOURCES: tuple[str, ...] = ("network", "two_tower", "embedding", "trending")


@dataclass(frozen=True)
class CandidateConfig:
    """How many candidates each source returns, and over which time windows."""

    window_hours: float = 48.0  # posts older than this are not candidates (the world's inbox window)
    two_tower: int = 1000  # nearest neighbours of the user tower's vector in the ANN index
    ann: str = "exact"  # the index kind: "exact", "ivf" or "hnsw" (chapter 6 measures the choice)
    ann_lists: int = 32  # IVF: k-means cells (the rule of thumb: of the order of the square root of the posts)
    ann_probe: int = 8  # IVF: cells searched per query
    embedding: int = 400  # nearest neighbours of the user's recent engagements, by text embedding
    trending: int = 250  # most engaged posts of the last ``trending_hours``
    trending_hours: float = 24.0
    profile_days: float = 7.0  # engagements that define the user's taste profile

    def validate(self) -> None:
        for name in ("two_tower", "embedding", "trending"):
            require_int(name, getattr(self, name), lo=0)
        require("ann", self.ann, self.ann in INDEX_KINDS, f"one of {', '.join(INDEX_KINDS)}")
        require_int("ann_lists", self.ann_lists, lo=1)
        require_int("ann_probe", self.ann_probe, 1, self.ann_lists)
        for name in ("window_hours", "trending_hours", "profile_days"):
            require_float(name, getattr(self, name), 0.0, open_lo=True)


class CandidateIndex:
    """What candidate generation reads, prepared by a batch job as of ``now``: the follow graph, each user's
    seen posts and taste profile (mean text embedding of recently engaged posts), the recent posts' normalized
    embeddings, and the trending list; with a ``retrieval`` model, the recent posts' two-tower vectors in an
    ANN index (``add_post`` indexes a post created later)."""

    def __init__(self, log: pd.DataFrame, posts: pd.DataFrame, edges: pd.DataFrame, text: pd.DataFrame,
                 now: str | pd.Timestamp, config: CandidateConfig | None = None,
                 retrieval: TwoTower | None = None) -> None:
        self.config = config or CandidateConfig()
        self.config.validate()
        self.now = now = pd.Timestamp(now)
        log = log[log["timestamp"] < now]
        known = edges[edges["created_at"] < now]
        self.sources = {int(user): np.unique(targets) for user, targets in known.groupby("user_id")["target_id"]}
        self.seen = {int(user): np.unique(posts) for user, posts in log.groupby("user_id")["post_id"]}
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
        self.retrieval = retrieval
        if retrieval is not None:
            self.tower_vectors = retrieval.post_vectors(self.recent_ids)
            self.ann = PostIndex(self.tower_vectors.shape[1], self.config.ann, lists=self.config.ann_lists,
                                 probe=self.config.ann_probe)
            self.ann.add(self.recent_ids, self.tower_vectors)
        self._text = text

    def add_post(self, post: pd.Series) -> None:
        """Index a post created after the snapshot (``post_id``, ``author_id``, ``created_at``): what the
        post-creation job does, running the post tower once. Its id must be above every indexed id."""
        post_id = int(post["post_id"])
        require("post_id", post_id, post_id > int(self.recent_ids[-1]), f"an id above {int(self.recent_ids[-1])}")
        self.recent_ids = np.append(self.recent_ids, post_id)
        self.recent_author = np.append(self.recent_author, int(post["author_id"]))
        vector = self._text.loc[[post_id]].to_numpy(dtype=float)
        self.recent_vectors = np.vstack([self.recent_vectors, vector / max(float(np.linalg.norm(vector)), 1e-12)])
        if self.retrieval is not None:
            tower = self.retrieval.post_vectors(np.array([post_id]))
            self.tower_vectors = np.vstack([self.tower_vectors, tower])
            self.ann.add(np.array([post_id]), tower)

    def eligible(self, user: int, ids: np.ndarray) -> np.ndarray:
        """The posts of ``ids`` the user may be shown: not seen before the snapshot, and not their own."""
        if not len(ids):
            return ids
        authors = self.recent_author[np.searchsorted(self.recent_ids, ids)]
        seen = self.seen.get(user)
        keep = authors != user
        if seen is not None:
            keep &= ~np.isin(ids, seen)
        return ids[keep]

    def network(self, user: int) -> np.ndarray:
        """Unseen posts of the window by the user's friends and followed pages."""
        followed = self.sources.get(user)
        if followed is None:
            return np.empty(0, dtype=np.int64)
        return self.eligible(user, self.recent_ids[np.isin(self.recent_author, followed)])

    def user_vector(self, user: int) -> np.ndarray:
        """The user tower's vector for ``user`` (from id, connections and profile; without history, no id)."""
        require("retrieval", None, self.retrieval is not None, "a TwoTower model (this index was built without)")
        # Computed on every call, not memoized on the index: the web service answers requests on several
        # threads, and a shared "last user" would hand one request another user's vector.
        return self.retrieval.user_vectors(np.array([user]))[0]  # type: ignore[union-attr]

    def two_tower(self, user: int) -> np.ndarray:
        """Unseen posts nearest to the user tower's vector in the ANN index (none without a retrieval model)."""
        if self.retrieval is None or self.config.two_tower == 0:
            return np.empty(0, dtype=np.int64)
        ids, _ = self.ann.search(self.user_vector(user), self.config.two_tower + 100)
        ids = ids[0][ids[0] >= 0]
        return self.eligible(user, ids)[:self.config.two_tower]

    def light_scores(self, user: int, post_ids: np.ndarray) -> np.ndarray:
        """The two-tower score (dot product) of ``post_ids`` for ``user``: the light ranker's score."""
        rows = np.searchsorted(self.recent_ids, post_ids)
        return self.tower_vectors[rows] @ self.user_vector(user)

    def embedding(self, user: int) -> np.ndarray:
        """Unseen posts whose text is most similar to the user's recent engagements (none without any)."""
        if user not in self.profiles.index or self.config.embedding == 0:
            return np.empty(0, dtype=np.int64)
        similarity = self.recent_vectors @ self.profiles.loc[user].to_numpy()
        order = np.argsort(-similarity, kind="stable")
        ids = self.eligible(user, self.recent_ids[order[:self.config.embedding + 50]])
        return ids[:self.config.embedding]

    def trending(self, user: int) -> np.ndarray:
        """The most engaged posts of the last hours that the user has not seen: the same for everyone."""
        ids = self.eligible(user, self.trending_ids[:self.config.trending + 50])
        return ids[:self.config.trending]

    def candidates(self, user: int) -> pd.DataFrame:
        """The union of the sources, one row per post, with the first source that found it."""
        found = [np.asarray(getattr(self, source)(user), dtype=np.int64) for source in SOURCES]
        ids = np.concatenate(found)
        which = np.repeat(np.arange(len(SOURCES)), [len(part) for part in found])
        # np.unique sorts the ids and points at each one's first occurrence: the first source in SOURCES order.
        unique, first = np.unique(ids, return_index=True)
        return pd.DataFrame({"post_id": unique, "source": np.array(SOURCES, dtype=object)[which[first]]})

    def all_eligible(self, user: int) -> np.ndarray:
        """Every unseen post of the window: the pool an oracle would choose from."""
        return self.eligible(user, self.recent_ids)
