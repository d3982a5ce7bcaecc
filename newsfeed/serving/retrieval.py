"""Learned retrieval: a two-tower model and the approximate nearest-neighbour index that serves it.

The **post tower** maps what is known when a post is created (its text embedding, topic, media type and author)
to a unit vector; the **user tower** maps what is known about a person (their id, the authors they are
connected to, their country, device and age) to a vector in the same space. Their dot product scores a
(user, post) pair, so retrieval is a nearest-neighbour search, and the post tower runs once per post, when it
is created: a new post is retrievable as soon as its vector is added to the index.

Training uses the logged engagements before the snapshot as positives and the other positives of the same
batch as negatives (in-batch softmax). Popular posts appear in many batches and would be pushed down as
negatives far more often than rare ones; subtracting the log of each post's sampling probability from its
logits (the "logQ" correction of Yi et al., 2019) removes that bias. A share of training rows hide the user's
id, so the tower also has an answer for a person with no history: the authors they connected to at signup
and their profile.

``PostIndex`` wraps faiss: exact inner-product search, an inverted-file index (IVF, which supports removing
expired posts) or an HNSW graph.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from newsfeed import features
from newsfeed import vocabulary as vocab
from newsfeed.cache import fitted_path, keep_fitted, rows_digest, torch_bytes
from newsfeed.metrics import engagement_score
from newsfeed.models.multitask import TRAINING_DTYPE
from newsfeed.validation import require, require_float, require_int
from newsfeed.world import storage as world_storage

#: The index kinds ``PostIndex`` builds.
INDEX_KINDS: tuple[str, ...] = ("exact", "ivf", "hnsw")


@dataclass(frozen=True)
class TwoTowerConfig:
    """Hyperparameters of the two-tower model; validated when it is fitted."""

    dimensions: int = 32
    hidden: int = 64
    temperature: float = 0.05  # the softmax's temperature on cosine similarities
    epochs: int = 6
    batch_size: int = 1024
    learning_rate: float = 3e-3
    id_dropout: float = 0.2  # share of training rows whose user id is hidden (what a new user looks like)
    popularity_correction: bool = True  # subtract log(sampling probability) from in-batch logits
    seed: int = 0

    def validate(self) -> None:
        require_int("dimensions", self.dimensions, lo=2)
        require_int("hidden", self.hidden, lo=1)
        require_float("temperature", self.temperature, 0.0, open_lo=True)
        require_int("epochs", self.epochs, lo=1)
        require_int("batch_size", self.batch_size, lo=2)
        require_float("learning_rate", self.learning_rate, 0.0, open_lo=True)
        require_float("id_dropout", self.id_dropout, 0.0, 1.0)
        require("popularity_correction", self.popularity_correction, isinstance(self.popularity_correction, bool),
                "True or False")
        require_int("seed", self.seed, lo=0)


class TwoTowerNetwork(nn.Module):
    """The two towers. They share the author embedding: a post is embedded through its author, a user through
    the mean of the authors they are connected to, so a new user's friends place them near their friends' posts."""

    def __init__(self, n_users: int, n_authors: int, n_text: int, config: TwoTowerConfig) -> None:
        super().__init__()
        d, h = config.dimensions, config.hidden
        self.unknown_user = n_users  # the id row of anyone without history
        self.user = nn.Embedding(n_users + 1, d)
        self.author = nn.Embedding(n_authors, d)
        self.topic = nn.Embedding(len(vocab.TOPICS) + 1, 8)
        self.media = nn.Embedding(len(vocab.MEDIA_TYPES) + 1, 4)
        self.country = nn.Embedding(len(vocab.COUNTRIES) + 1, 4)
        self.device = nn.Embedding(len(vocab.DEVICES) + 2, 4)
        for table in (self.user, self.author):
            nn.init.normal_(table.weight, std=0.05)
        self.user_mlp = nn.Sequential(nn.Linear(2 * d + 4 + 4 + 2, h), nn.ReLU(), nn.Linear(h, d))
        self.post_mlp = nn.Sequential(nn.Linear(n_text + 8 + 4 + d, h), nn.ReLU(), nn.Linear(h, d))

    def users(self, user: torch.Tensor, authors: torch.Tensor, offsets: torch.Tensor, country: torch.Tensor,
              device: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        """Unit vectors for users; ``authors``/``offsets`` list each user's connected authors (EmbeddingBag form)."""
        connected = F.embedding_bag(authors, self.author.weight, offsets, mode="mean")
        x = torch.cat([self.user(user), connected, self.country(country), self.device(device), age], dim=1)
        return F.normalize(self.user_mlp(x), dim=1)

    def posts(self, text: torch.Tensor, topic: torch.Tensor, media: torch.Tensor,
              author: torch.Tensor) -> torch.Tensor:
        """Unit vectors for posts, from what is known when the post is created."""
        x = torch.cat([text, self.topic(topic), self.media(media), self.author(author)], dim=1)
        return F.normalize(self.post_mlp(x), dim=1)


def in_batch_softmax_loss(users: torch.Tensor, posts: torch.Tensor, post_ids: np.ndarray,
                          log_q: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """The loss of a batch of engaged (user, post) pairs: row i's positive is post i, and every
    other post of the batch is a negative (a softmax over the batch). ``log_q``, each post's log
    probability of being sampled, is subtracted from its logits: popular posts are negatives far
    more often than rare ones, and without the correction the model learns to push them down
    (Yi et al., 2019). A post that appears twice in the batch is not a negative for itself."""
    logits = users @ posts.T / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    repeated = torch.as_tensor(post_ids[:, None] == post_ids[None, :])
    repeated &= ~torch.eye(len(post_ids), dtype=torch.bool)
    logits = logits.masked_fill(repeated, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(post_ids)))


def _codes(values: pd.Series, categories: tuple[str, ...]) -> np.ndarray:
    """Category codes in ``categories`` order; unknown or missing values get ``len(categories)``."""
    codes = pd.Categorical(values, categories=list(categories)).codes.astype(np.int64)
    return np.where(codes < 0, len(categories), codes)


class TwoTower:
    """A two-tower retrieval model fitted on the engagements logged before ``now``.

    ``users`` are the cleaned profiles, ``posts`` the posts table, ``text`` their text embeddings, ``edges`` the
    graph; only edges created before ``now`` are used. After ``fit``, ``post_vectors`` embeds any posts (also
    ones created later) and ``user_vectors`` any person known at ``now``.
    """

    def __init__(self, config: TwoTowerConfig | None = None) -> None:
        self.config = config or TwoTowerConfig()
        self.losses_: list[float] = []

    def _prepare(self, users: pd.DataFrame, posts: pd.DataFrame, text: pd.DataFrame, edges: pd.DataFrame,
                 now: pd.Timestamp, n_accounts: int) -> None:
        self.now = now
        self.n_accounts = n_accounts
        people = users.set_index("user_id").reindex(range(n_accounts))
        self._country = _codes(people["country"], tuple(vocab.COUNTRIES))
        self._device = _codes(people["device"], vocab.DEVICES)
        age = people["age"].to_numpy(dtype=float)
        known_age = np.isfinite(age)
        self._age = np.stack([np.where(known_age, (age - 35.0) / 15.0, 0.0), (~known_age).astype(float)], 1)
        known = edges[edges["created_at"] < now]
        grouped = known.groupby("user_id")["target_id"].agg(lambda s: np.unique(s.to_numpy()))
        self._connected = [grouped.get(u, np.empty(0, dtype=np.int64)) for u in range(n_accounts)]
        self._posts = posts.set_index("post_id")
        self._text = text

    def post_features(self, post_ids: np.ndarray) -> pd.DataFrame:
        """What the post tower reads for ``post_ids``: the text embedding, ``topic``, ``media_type``, ``author_id``."""
        post_ids = np.asarray(post_ids, dtype=np.int64)
        rows = self._posts.index.get_indexer(post_ids)
        require("post_ids", post_ids[rows < 0][:5].tolist(), bool((rows >= 0).all()), "ids of existing posts")
        frame = self._text.reindex(post_ids).reset_index(drop=True)
        static = self._posts.iloc[rows][["topic", "media_type", "author_id"]].reset_index(drop=True)
        return pd.concat([frame, static], axis=1)

    def _post_inputs(self, features: pd.DataFrame, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
        return (torch.tensor(features[self._text.columns].to_numpy(dtype=float), dtype=dtype),
                torch.as_tensor(_codes(features["topic"], vocab.TOPICS)),
                torch.as_tensor(_codes(features["media_type"], vocab.MEDIA_TYPES)),
                torch.from_numpy(features["author_id"].to_numpy(dtype=np.int64, copy=True)))

    def _user_inputs(self, user_ids: np.ndarray, hide_id: np.ndarray,
                     dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
        ids = np.where(hide_id, self.network_.unknown_user, user_ids)
        lists = [self._connected[u] for u in user_ids.tolist()]
        lengths = np.array([len(a) for a in lists])
        authors = np.concatenate(lists) if lengths.sum() else np.zeros(0, dtype=np.int64)
        offsets = np.r_[0, np.cumsum(lengths)[:-1]]
        return (torch.as_tensor(ids), torch.as_tensor(authors, dtype=torch.long),
                torch.as_tensor(offsets, dtype=torch.long), torch.as_tensor(self._country[user_ids]),
                torch.as_tensor(self._device[user_ids]), torch.as_tensor(self._age[user_ids], dtype=dtype))

    def fit(self, log: pd.DataFrame, users: pd.DataFrame, posts: pd.DataFrame, text: pd.DataFrame,
            edges: pd.DataFrame, now: str | pd.Timestamp, n_people: int, n_accounts: int) -> TwoTower:
        """Train on the engagements of ``log`` before ``now`` (an impression with any positive reaction)."""
        config = self.config
        config.validate()
        now = pd.Timestamp(now)
        self._prepare(users, posts, text, edges, now, n_accounts)
        before = log[log["timestamp"] < now]
        positives = before[engagement_score(before) > 0]
        require("log", len(positives), len(positives) >= config.batch_size,
                f"at least batch_size={config.batch_size} engaged impressions before {now}")
        user_ids = positives["user_id"].to_numpy()
        post_ids = positives["post_id"].to_numpy()
        post_inputs = self._post_inputs(self.post_features(post_ids), TRAINING_DTYPE)
        # The sampling probability of each post as an in-batch negative: its share of the positives.
        frequency = pd.Series(post_ids).map(pd.Series(post_ids).value_counts(normalize=True)).to_numpy()
        log_q = torch.as_tensor(np.log(frequency), dtype=TRAINING_DTYPE)
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        self.network_ = TwoTowerNetwork(n_people, n_accounts, text.shape[1], config).to(TRAINING_DTYPE)
        optimizer = torch.optim.Adam(self.network_.parameters(), lr=config.learning_rate)
        self.network_.train()
        for _ in range(config.epochs):
            order = rng.permutation(len(positives))
            total, batches = 0.0, 0
            for lo in range(0, len(order) - config.batch_size + 1, config.batch_size):
                batch = order[lo:lo + config.batch_size]
                hide = rng.random(len(batch)) < config.id_dropout
                u = self.network_.users(*self._user_inputs(user_ids[batch], hide, TRAINING_DTYPE))
                p = self.network_.posts(*(tensor[batch] for tensor in post_inputs))
                correction = log_q[batch] if config.popularity_correction else None
                loss = in_batch_softmax_loss(u, p, post_ids[batch], correction, config.temperature)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, batches = total + loss.item(), batches + 1
            self.losses_.append(total / batches)
        self.network_.float().eval()  # trained in float64 (see TRAINING_DTYPE), serves float32 vectors
        self.known_users_ = set(np.unique(user_ids).tolist())
        return self

    def state(self) -> dict[str, object]:
        """What ``restore`` needs besides the tables ``fit`` read: the trained weights, the losses by epoch and
        the users seen in training."""
        return {"network": self.network_.state_dict(), "losses": list(self.losses_),
                "known_users": sorted(self.known_users_)}

    def restore(self, state: dict[str, object], users: pd.DataFrame, posts: pd.DataFrame, text: pd.DataFrame,
                edges: pd.DataFrame, now: str | pd.Timestamp, n_people: int, n_accounts: int) -> TwoTower:
        """This model as ``fit`` left it, from a fitted model's ``state`` and the tables (and ``now``) it was
        fitted with."""
        self.config.validate()
        self._prepare(users, posts, text, edges, pd.Timestamp(now), n_accounts)
        self.network_ = TwoTowerNetwork(n_people, n_accounts, text.shape[1], self.config).float()
        self.network_.load_state_dict(state["network"])
        self.network_.eval()
        self.losses_ = list(state["losses"])
        self.known_users_ = set(state["known_users"])
        return self

    def post_vectors(self, post_ids: np.ndarray) -> np.ndarray:
        """The post tower's unit vectors (float32, one row per id): what runs when a post is created."""
        return self.embed_posts(self.post_features(post_ids))

    @torch.no_grad()
    def embed_posts(self, features: pd.DataFrame) -> np.ndarray:
        """The post tower on ``post_features``-shaped rows, also of posts this model has never seen."""
        return self.network_.posts(*self._post_inputs(features)).numpy()

    @torch.no_grad()
    def user_vectors(self, user_ids: np.ndarray) -> np.ndarray:
        """The user tower's unit vectors; a user with no engagement before ``now`` is embedded without an id,
        from their connections and profile."""
        user_ids = np.asarray(user_ids, dtype=np.int64)
        require("user_ids", user_ids.tolist()[:5], bool(((user_ids >= 0) & (user_ids < self.n_accounts)).all()),
                f"ids from 0 to {self.n_accounts - 1}")
        hide = np.array([u not in self.known_users_ for u in user_ids.tolist()], dtype=bool)
        return self.network_.users(*self._user_inputs(user_ids, hide)).numpy()


class PostIndex:
    """Nearest-neighbour search by inner product over post vectors, with posts added as they are created and
    removed as they expire: ``kind`` is ``"exact"`` (brute force), ``"ivf"`` (an inverted file: ``lists``
    k-means cells, ``probe`` of them searched) or ``"hnsw"`` (a graph with ``links`` neighbours per node,
    searched keeping the ``depth`` best nodes seen, which must exceed the neighbours asked for; faiss cannot
    remove from it)."""

    def __init__(self, dimensions: int, kind: str = "exact", lists: int = 64, probe: int = 8, links: int = 32,
                 depth: int = 256, seed: int = 0) -> None:
        import faiss

        require("kind", kind, kind in INDEX_KINDS, f"one of {', '.join(INDEX_KINDS)}")
        require_int("dimensions", dimensions, lo=1)
        require_int("lists", lists, lo=1)
        require_int("probe", probe, 1, lists)
        require_int("links", links, lo=2)
        require_int("depth", depth, lo=1)
        self.kind, self.dimensions = kind, dimensions
        if kind == "exact":
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimensions))
        elif kind == "ivf":
            quantizer = faiss.IndexFlatIP(dimensions)
            self._quantizer = quantizer  # the IVF index keeps a pointer to it
            self._index = faiss.IndexIVFFlat(quantizer, dimensions, lists, faiss.METRIC_INNER_PRODUCT)
            self._index.cp.seed = seed
            self._index.nprobe = probe
        else:
            graph = faiss.IndexHNSWFlat(dimensions, links, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efSearch = depth
            self._graph = graph  # the ID map keeps a pointer to it
            self._index = faiss.IndexIDMap(graph)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def probe(self) -> int:
        """IVF: how many cells a query searches (more: higher recall, slower)."""
        require("kind", self.kind, self.kind == "ivf", "'ivf' (only an inverted file has cells to probe)")
        return int(self._index.nprobe)

    @probe.setter
    def probe(self, cells: int) -> None:
        require("kind", self.kind, self.kind == "ivf", "'ivf' (only an inverted file has cells to probe)")
        require_int("probe", cells, 1, int(self._index.nlist))
        self._index.nprobe = cells

    def add(self, post_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add posts (an IVF index is trained on the first vectors it is given)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        require("vectors", vectors.shape, vectors.ndim == 2 and vectors.shape[1] == self.dimensions
                and len(vectors) == len(post_ids), f"an array of len(post_ids) rows x {self.dimensions}")
        if not self._index.is_trained:
            self._index.train(vectors)
        self._index.add_with_ids(vectors, np.asarray(post_ids, dtype=np.int64))

    def remove(self, post_ids: np.ndarray) -> int:
        """Remove posts (expired ones); returns how many were removed."""
        require("kind", self.kind, self.kind != "hnsw", "'exact' or 'ivf' (faiss cannot remove from HNSW)")
        return int(self._index.remove_ids(np.asarray(post_ids, dtype=np.int64)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best posts per query row: (post ids, scores), -1 where fewer exist."""
        require_int("k", k, lo=1)
        scores, ids = self._index.search(np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32), k)
        return ids, scores


def fit_retrieval(dataset: features.Dataset, edges: pd.DataFrame, n_people: int, n_accounts: int,
                  now: str | pd.Timestamp | None = None, config: TwoTowerConfig | None = None,
                  folder: str | Path | None = None) -> TwoTower:
    """The two-tower model trained on the engagements logged before ``now`` (default ``dataset.serve_at``).

    With a ``folder`` (chapter 6 passes ``world.artifacts_folder``) the fitted model is kept there, keyed by the
    simulator, feature and retrieval code, the configuration, ``now`` and the tables it reads (their ids, labels
    and times: ``cache.rows_digest``): the same fit is loaded the next time, any such change trains anew.
    """
    now = dataset.serve_at if now is None else pd.Timestamp(now)
    config = config or TwoTowerConfig()
    tables = (dataset.log, dataset.users, dataset.posts, dataset.text, edges)
    model = TwoTower(copy.deepcopy(config))
    if folder is None:
        return model.fit(*tables, now, n_people, n_accounts)
    identity = [repr(config).encode(), str((now, n_people, n_accounts)).encode(), rows_digest(*tables)]
    path = fitted_path(folder, "retrieval", identity, _retrieval_sources())
    if path.exists():
        return model.restore(torch.load(path, weights_only=False), *tables[1:], now, n_people, n_accounts)
    model.fit(*tables, now, n_people, n_accounts)
    keep_fitted(path, torch_bytes(model.state()))
    return model


def _retrieval_sources() -> list[Path]:
    """The code a fitted two-tower model depends on: the worlds the simulator generates (their pinned digest,
    ``world.fingerprint``), the features, the metrics, the network's training precision (``models.multitask``)
    and this module."""
    package = Path(__file__).parent.parent
    return [*world_storage.output_files(), *sorted((package / "features").glob("*.py")), package / "metrics.py",
            package / "models" / "multitask.py", Path(__file__)]
