"""Rankers, from the simplest baseline to a multi-task neural network, behind one interface.

Every ranker predicts, for each row of a feature table (``newsfeed.features.feature_table``), a probability per
reaction (``p_click`` … ``p_hide``); the feed is ordered by the weighted engagement of those probabilities
(``newsfeed.metrics.engagement_score``). Baselines that only rank (reverse-chronological) return a score in
every column, which is enough for ranking metrics and ROC-AUC but not for calibration.

Trained rankers are cached next to the world (``data/<scale>-seed<seed>/rankers/``) so that later chapters load
what chapter 4 trained instead of training it again; the cache is keyed by the code and the data.
"""

from __future__ import annotations

import copy
import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from torch import nn

from newsfeed import features, world
from newsfeed.metrics import engagement_score
from newsfeed.world import REACTIONS

PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{r}" for r in REACTIONS)


def serving_view(table: pd.DataFrame) -> pd.DataFrame:
    """The rows as the ranker sees them when serving: every candidate scored as if shown at the top.

    Position is a training feature (it explains position bias in the logs) and a constant when ranking, so
    the ranking reflects the post, not where the old ranker happened to put it.
    """
    return table.assign(position=1)


def correct_for_negative_sampling(probability: np.ndarray, negative_rate: float) -> np.ndarray:
    """Undo the shift a model learns when only ``negative_rate`` of the negatives were kept for training.

    Odds are inflated by ``1 / negative_rate``; ``p = p' / (p' + (1 - p') / negative_rate)`` restores them
    (He et al., 2014).
    """
    if not 0 < negative_rate <= 1:
        raise ValueError(f"negative_rate={negative_rate!r} is invalid: negative_rate accepts a number in (0, 1]")
    probability = np.asarray(probability, dtype=float)
    return probability / (probability + (1.0 - probability) / negative_rate)


def downsample_negatives(rows: pd.DataFrame, label: str, negative_rate: float, seed: int = 0) -> pd.DataFrame:
    """All positives of ``label`` and a random ``negative_rate`` share of its negatives."""
    if not 0 < negative_rate <= 1:
        raise ValueError(f"negative_rate={negative_rate!r} is invalid: negative_rate accepts a number in (0, 1]")
    keep = (rows[label] > 0) | (np.random.default_rng(seed).random(len(rows)) < negative_rate)
    return rows[keep.to_numpy()]


class Ranker(ABC):
    """A model that scores feed candidates. Subclasses set ``name`` and implement ``fit`` and ``predict``."""

    name: str = "ranker"
    #: Seconds the last ``fit`` took.
    fit_seconds: float = 0.0

    @abstractmethod
    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> Ranker:
        """Learn from a feature table with label columns; ``valid`` is for early stopping where it applies."""

    @abstractmethod
    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """One column per reaction (``p_click`` …), in the row order of ``table``."""

    def score(self, table: pd.DataFrame) -> np.ndarray:
        """The ranking score of each row as served: expected weighted engagement at the top of the feed."""
        return engagement_score(self.predict(serving_view(table)), prefix="p_").to_numpy()

    @property
    def n_parameters(self) -> int:
        """How many numbers the model learned."""
        return 0


def _frame(values: Mapping[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame({column: values[column] for column in PROBABILITY_COLUMNS}, index=index)


class Chronological(Ranker):
    """Newest first: the feed before ranking. Scores every reaction by freshness."""

    name = "reverse-chronological"

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> Chronological:
        return self

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        fresh = np.exp(-table["post_age_hours"].to_numpy(dtype=float) / 24.0)
        return _frame(dict.fromkeys(PROBABILITY_COLUMNS, fresh), table.index)


class Popularity(Ranker):
    """Most engaging posts first: each reaction's smoothed rate on the post so far (no personalization)."""

    name = "popularity"

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> Popularity:
        self.rate_of_engagement_ = {r: float(train[r].mean()) / features.ENGAGEMENT_PRIOR for r in ("comment", "share")}
        return self

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        rate = table["post_engagement_rate"].to_numpy(dtype=float)
        return _frame({"p_click": table["post_click_rate"].to_numpy(dtype=float),
                       "p_like": table["post_like_rate"].to_numpy(dtype=float),
                       "p_comment": rate * self.rate_of_engagement_["comment"],
                       "p_share": rate * self.rate_of_engagement_["share"],
                       "p_hide": table["post_hide_rate"].to_numpy(dtype=float)}, table.index)


class PerReaction(Ranker):
    """One scikit-learn classifier per reaction on the feature pipeline's matrix.

    With ``negative_rate < 1`` each reaction's negatives are down-sampled for training (much faster for rare
    reactions) and the predictions corrected back to calibrated probabilities.
    """

    def __init__(self, name: str, estimator: Any, negative_rate: float = 1.0, seed: int = 0) -> None:
        self.name = name
        self.estimator = estimator
        self.negative_rate = negative_rate
        self.seed = seed

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> PerReaction:
        start = time.perf_counter()
        self.models_: dict[str, Pipeline] = {}
        for i, reaction in enumerate(REACTIONS):
            rows = train if self.negative_rate >= 1 else downsample_negatives(train, reaction, self.negative_rate,
                                                                              self.seed + i)
            model = make_pipeline(features.feature_pipeline(features.MODEL_NUMERIC_FEATURES), clone(self.estimator))
            self.models_[reaction] = model.fit(rows, rows[reaction])
        self.fit_seconds = time.perf_counter() - start
        return self

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for reaction, model in self.models_.items():
            probability = model.predict_proba(table)[:, 1]
            out[f"p_{reaction}"] = correct_for_negative_sampling(probability, self.negative_rate)
        return _frame(out, table.index)

    @property
    def n_parameters(self) -> int:
        total = 0
        for model in self.models_.values():
            estimator = model[-1]
            if hasattr(estimator, "coef_"):
                total += estimator.coef_.size + estimator.intercept_.size
            elif hasattr(estimator, "_predictors"):  # trees: a value per leaf, a feature and a threshold per split
                leaves = sum(tree.get_n_leaf_nodes() for trees in estimator._predictors for tree in trees)
                splits = sum(len(tree.nodes) - tree.get_n_leaf_nodes() for trees in estimator._predictors
                             for tree in trees)
                total += leaves + 2 * splits
        return int(total)


def logistic_regression(seed: int = 0) -> PerReaction:
    """Logistic regression per reaction (negatives down-sampled, corrected): the baseline every model must beat."""
    return PerReaction("logistic regression", LogisticRegression(max_iter=400, C=1.0), negative_rate=0.3, seed=seed)


def gradient_boosting(seed: int = 0, trees: int = 120, negative_rate: float = 0.2) -> PerReaction:
    """Gradient-boosted trees per reaction (scikit-learn's histogram GBDT), with negatives down-sampled."""
    booster = HistGradientBoostingClassifier(max_iter=trees, learning_rate=0.1, max_leaf_nodes=31,
                                             random_state=seed)
    return PerReaction("gradient-boosted trees", booster, negative_rate=negative_rate, seed=seed)


# --------------------------------------------------------------------------------------------------------
# The multi-task neural network
# --------------------------------------------------------------------------------------------------------
@dataclass
class MultiTaskConfig:
    """Hyperparameters of the multi-task network; every one is validated when the model is built."""

    embedding_dim: int = 16
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.1
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    #: Embeddings see few rows each and overfit first: they get their own, stronger weight decay.
    embedding_weight_decay: float = 10.0
    batch_size: int = 512
    max_epochs: int = 12
    patience: int = 2
    #: Positions above this share one position-bias parameter.
    max_position: int = 30
    task_weights: Mapping[str, float] = field(default_factory=lambda: {
        "click": 1.0, "like": 1.0, "comment": 2.0, "share": 2.0, "hide": 2.0, "dwell": 0.2})
    seed: int = 0

    def validate(self) -> None:
        checks = {"embedding_dim": self.embedding_dim >= 1, "dropout": 0 <= self.dropout < 1,
                  "learning_rate": self.learning_rate > 0, "weight_decay": self.weight_decay >= 0,
                  "batch_size": self.batch_size >= 1, "max_epochs": self.max_epochs >= 1,
                  "patience": self.patience >= 1, "hidden": len(self.hidden) >= 1 and min(self.hidden) >= 1}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: see MultiTaskConfig for the range")
        missing = (set(REACTIONS) | {"dwell"}) - set(self.task_weights)
        if missing or any(w < 0 for w in self.task_weights.values()):
            raise ValueError(f"task_weights={dict(self.task_weights)!r} is invalid: task_weights accepts a "
                             f"non-negative weight for each of {', '.join((*REACTIONS, 'dwell'))}")


class MultiTaskNetwork(nn.Module):
    """Embeddings for user, author and topic, their interactions, and the dense features feed shared layers;
    one logit per reaction and a dwell-time regression come out of their own heads."""

    def __init__(self, n_dense: int, n_users: int, n_authors: int, n_topics: int, config: MultiTaskConfig) -> None:
        super().__init__()
        k = config.embedding_dim
        self.user = nn.Embedding(n_users, k)
        self.author = nn.Embedding(n_authors, k)
        self.topic = nn.Embedding(n_topics, k)
        for table in (self.user, self.author, self.topic):
            nn.init.normal_(table.weight, std=0.05)
        layers: list[nn.Module] = []
        width = n_dense + 5 * k
        for size in config.hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(config.dropout)]
            width = size
        self.shared = nn.Sequential(*layers)
        self.reactions = nn.Linear(width, len(REACTIONS))
        self.dwell = nn.Linear(width, 1)
        # A shallow position tower: a learned log-odds shift per feed position and reaction, added to the
        # logits. It absorbs position bias in training; serving scores every candidate at position 1.
        self.position_bias = nn.Embedding(config.max_position + 1, len(REACTIONS))
        nn.init.zeros_(self.position_bias.weight)

    def forward(self, dense: torch.Tensor, user: torch.Tensor, author: torch.Tensor, topic: torch.Tensor,
                position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, a, t = self.user(user), self.author(author), self.topic(topic)
        hidden = self.shared(torch.cat([dense, u, a, t, u * t, u * a], dim=1))
        return self.reactions(hidden) + self.position_bias(position), self.dwell(hidden).squeeze(1)


class _IdIndex:
    """Maps ids seen in training to embedding rows 1..n; anything unseen (a new user) maps to row 0."""

    def __init__(self, values: pd.Series) -> None:
        self.known = pd.Index(sorted(pd.unique(values.dropna())))

    def __len__(self) -> int:
        return len(self.known) + 1

    def __call__(self, values: pd.Series) -> np.ndarray:
        return self.known.get_indexer(values).astype(np.int64) + 1  # a hash lookup; unseen (-1) becomes row 0


class MultiTask(Ranker):
    """One network, five reaction heads and a dwell head, trained with a per-task weighted loss and early
    stopping on the validation loss. ``history`` holds the learning curves."""

    name = "multi-task network"

    def __init__(self, config: MultiTaskConfig | None = None,
                 progress: Callable[[str], None] | None = print) -> None:
        self.config = config or MultiTaskConfig()
        self.config.validate()
        self.progress = progress

    def inputs(self, table: pd.DataFrame) -> list[Any]:
        """The network's inputs for a feature table: the encoded dense matrix, the user, author and topic
        embedding rows, and the positions (as torch tensors, in the order ``network_`` takes them)."""
        dense = torch.tensor(self.transform_.transform(table), dtype=torch.float32)
        ids = [torch.tensor(index(table[column])) for index, column in
               ((self.users_, "user_id"), (self.authors_, "author_id"), (self.topics_, "topic"))]
        position = table["position"].clip(upper=self.config.max_position).to_numpy(dtype=np.int64)
        return [dense, *ids, torch.tensor(position)]

    def _labels(self, table: pd.DataFrame) -> tuple[Any, Any]:
        reactions = torch.tensor(table[list(REACTIONS)].to_numpy(dtype=np.float32))
        dwell = torch.tensor(np.log1p(table["dwell_seconds"].to_numpy(dtype=np.float32)))
        return reactions, dwell

    def _loss(self, logits: Any, dwell_pred: Any, reactions: Any, dwell: Any) -> tuple[Any, Any]:
        per_task = F.binary_cross_entropy_with_logits(logits, reactions, reduction="none").mean(dim=0)
        weights = self.task_weights_
        total = (per_task * weights).sum() + self.config.task_weights["dwell"] * F.mse_loss(dwell_pred, dwell)
        return total, per_task

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> MultiTask:
        start = time.perf_counter()
        config = self.config
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        # Position reaches the network through its own tower only, not through the dense features.
        numeric = [name for name in features.MODEL_NUMERIC_FEATURES if name != "position"]
        self.pipeline_ = features.feature_pipeline(numeric=numeric).fit(train)
        # The fitted pipeline as array arithmetic, used for training and serving alike: one code path, and a
        # feed request does not pay scikit-learn's per-call overhead.
        self.transform_ = features.CompiledTransform(self.pipeline_)
        self.users_, self.authors_ = _IdIndex(train["user_id"]), _IdIndex(train["author_id"])
        self.topics_ = _IdIndex(train["topic"])
        self.task_weights_ = torch.tensor([config.task_weights[r] for r in REACTIONS])
        inputs, (reactions, dwell) = self.inputs(train), self._labels(train)
        self.network_ = MultiTaskNetwork(inputs[0].shape[1], len(self.users_), len(self.authors_),
                                         len(self.topics_), config)
        embeddings = [p for name, p in self.network_.named_parameters() if name.split(".")[0] in
                      ("user", "author", "topic")]
        others = [p for name, p in self.network_.named_parameters() if name.split(".")[0] not in
                  ("user", "author", "topic")]
        optimizer = torch.optim.AdamW([{"params": embeddings, "weight_decay": config.embedding_weight_decay},
                                       {"params": others, "weight_decay": config.weight_decay}],
                                      lr=config.learning_rate)
        valid_inputs = self.inputs(valid) if valid is not None else None
        valid_labels = self._labels(valid) if valid is not None else None
        self.history = []
        best, best_state, stale = np.inf, None, 0
        for epoch in range(1, config.max_epochs + 1):
            self.network_.train()
            order = torch.randperm(len(reactions), generator=generator)
            total, batches = 0.0, 0
            for lo in range(0, len(order), config.batch_size):
                batch = order[lo:lo + config.batch_size]
                logits, dwell_pred = self.network_(*(x[batch] for x in inputs))
                loss, _ = self._loss(logits, dwell_pred, reactions[batch], dwell[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, batches = total + loss.item(), batches + 1
            record = {"epoch": epoch, "train_loss": total / batches}
            if valid_inputs is not None:
                valid_loss, per_task = self._evaluate(valid_inputs, valid_labels)
                record["valid_loss"] = valid_loss
                record.update({f"valid_{r}": float(v) for r, v in zip(REACTIONS, per_task, strict=True)})
            self.history.append(record)
            if self.progress is not None:
                shown = f"epoch {epoch:2d}: train loss {record['train_loss']:.4f}"
                if "valid_loss" in record:
                    shown += f", validation loss {record['valid_loss']:.4f}"
                self.progress(shown)
            if valid_inputs is None:
                continue
            if record["valid_loss"] < best - 1e-5:
                best, best_state, stale = record["valid_loss"], copy.deepcopy(self.network_.state_dict()), 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
        if best_state is not None:
            self.network_.load_state_dict(best_state)
            self.best_epoch = int(np.argmin([h["valid_loss"] for h in self.history])) + 1
        else:
            self.best_epoch = len(self.history)
        self.network_.eval()
        self.fit_seconds = time.perf_counter() - start
        return self

    def _evaluate(self, inputs: list[Any], labels: tuple[Any, Any]) -> tuple[float, Any]:
        self.network_.eval()
        with torch.no_grad():
            logits, dwell_pred = self._forward_batches(inputs)
            loss, per_task = self._loss(logits, dwell_pred, *labels)
        return float(loss), per_task

    def _forward_batches(self, inputs: list[Any], batch: int = 65536) -> tuple[Any, Any]:
        outputs = [self.network_(*(x[lo:lo + batch] for x in inputs)) for lo in range(0, len(inputs[0]), batch)]
        return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        self.network_.eval()
        with torch.no_grad():
            logits, _ = self._forward_batches(self.inputs(table))
        probability = torch.sigmoid(logits).numpy().astype(float)
        return _frame({f"p_{r}": probability[:, i] for i, r in enumerate(REACTIONS)}, table.index)

    def predict_dwell(self, table: pd.DataFrame) -> np.ndarray:
        """Predicted dwell seconds (the dwell head regresses log1p seconds)."""
        self.network_.eval()
        with torch.no_grad():
            _, dwell = self._forward_batches(self.inputs(table))
        return np.expm1(dwell.numpy().astype(float))

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.network_.parameters()))


def ranking_policy(ranker: Ranker, history: features.History, edges: pd.DataFrame,
                   dataset: features.Dataset) -> Callable[[pd.DataFrame], np.ndarray]:
    """A serving policy for ``World.rollout``: features for each candidate at request time from ``history``
    (``dataset.history`` of the log as of the last feature refresh), then the ranker's score as served.

    ``edges`` is the follow graph; ``dataset`` supplies the cleaned users and the text embeddings (the log and
    the posts, with topics read from their text, come in through ``history``).
    """
    def score(candidates: pd.DataFrame) -> np.ndarray:
        requests = candidates.rename(columns={"requested_at": "timestamp"}).assign(position=1)
        table = features.feature_table(requests, None, None, dataset.users, edges,  # log, posts: in history
                                       history=history).join(dataset.text, on="post_id")
        return ranker.score(table)

    return score


# --------------------------------------------------------------------------------------------------------
# The book's rankers, trained once and cached
# --------------------------------------------------------------------------------------------------------
def _cache_key(dataset: features.Dataset, config: MultiTaskConfig) -> str:
    digest = hashlib.sha256()
    for source in (features.__file__, __file__, world.__file__):
        digest.update(Path(source).read_bytes())
    digest.update(pd.util.hash_pandas_object(dataset.table[["impression_id", "like"]], index=False).to_numpy())
    digest.update(repr(config).encode())
    return digest.hexdigest()[:16]


def final_multitask(dataset: features.Dataset, folder: str | Path, epochs: int | None = None,
                    config: MultiTaskConfig | None = None) -> MultiTask:
    """The multi-task network as it ships: trained on weeks 1–3 (train and validation) for the number of epochs
    early stopping chose on week 3.

    Loaded from ``folder`` when the same code trained it on the same data; otherwise trained now and cached
    there. ``epochs`` skips the selection run when the caller already knows the epoch count (chapter 4 does).
    """
    config = config or MultiTaskConfig()
    path = Path(folder) / f"multitask-{_cache_key(dataset, config)}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    if epochs is None:
        selection = MultiTask(copy.deepcopy(config), progress=None).fit(dataset.part("train"), dataset.part("valid"))
        epochs = selection.best_epoch
    final_config = copy.deepcopy(config)
    final_config.max_epochs = epochs
    network = MultiTask(final_config, progress=None).fit(dataset.part("train", "valid"))
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob("multitask-*.pt"):
        old.unlink()
    staging = path.with_suffix(".tmp")
    torch.save(network, staging)
    staging.rename(path)
    return network


def final_baselines(dataset: features.Dataset, seed: int = 0) -> dict[str, Ranker]:
    """The baselines trained like the shipped model (on weeks 1–3), for a fair comparison on the test week."""
    rankers: list[Ranker] = [Chronological(), Popularity(), logistic_regression(seed), gradient_boosting(seed)]
    both = dataset.part("train", "valid")
    return {ranker.name: ranker.fit(both) for ranker in rankers}
