"""The multi-task neural network: shared layers over embeddings and dense features, one head per reaction and
a dwell head, a position tower that absorbs position bias, and its training loop."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from newsfeed import features
from newsfeed.models.ranker import Ranker, _frame
from newsfeed.validation import require, require_float, require_int
from newsfeed.world import REACTIONS

#: Networks train in float64 and serve in float32. Training amplifies rounding: in float32 another processor's
#: order of sums moved the validation loss by a ten-thousandth within three epochs, enough for early stopping to
#: keep another epoch. In float64 the same noise stays some ten digits below anything the book prints, so a
#: chapter's numbers are the same on a reader's laptop (see newsfeed.numerics). It costs about 1.6 times the
#: training time; serving, where nothing accumulates, keeps float32.
TRAINING_DTYPE = torch.float64


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
    #: The dense inputs; ``None`` is ``features.MODEL_NUMERIC_FEATURES`` without position. An ablation leaves
    #: some out; the informed ceiling adds hidden variables (columns the caller joined to the tables).
    numeric: tuple[str, ...] | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first hyperparameter out of its range, and the range."""
        require_int("embedding_dim", self.embedding_dim, lo=1)
        require("hidden", self.hidden, isinstance(self.hidden, tuple | list) and len(self.hidden) >= 1
                and all(isinstance(h, int) and h >= 1 for h in self.hidden), "one or more layer widths >= 1")
        require("dropout", self.dropout, isinstance(self.dropout, int | float) and 0 <= self.dropout < 1,
                "a number in [0, 1)")
        require_float("learning_rate", self.learning_rate, 0.0, open_lo=True)
        require_float("weight_decay", self.weight_decay, lo=0.0)
        require_float("embedding_weight_decay", self.embedding_weight_decay, lo=0.0)
        require_int("batch_size", self.batch_size, lo=1)
        require_int("max_epochs", self.max_epochs, lo=1)
        require_int("patience", self.patience, lo=1)
        require_int("max_position", self.max_position, lo=1)
        require_int("seed", self.seed, lo=0)
        require("numeric", self.numeric, self.numeric is None or (
            isinstance(self.numeric, tuple) and len(self.numeric) >= 1 and "position" not in self.numeric
            and all(isinstance(name, str) for name in self.numeric)),
                "None, or a tuple of one or more column names, without position (it has its own tower)")
        tasks = (*REACTIONS, "dwell")
        weights = dict(self.task_weights) if isinstance(self.task_weights, Mapping) else {}
        require("task_weights", self.task_weights, set(tasks) <= set(weights)
                and all(isinstance(w, int | float) and w >= 0 for w in weights.values()),
                f"a non-negative weight for each of {', '.join(tasks)}")


def epoch_line(record: Mapping[str, float]) -> str:
    """One epoch of a learning curve as ``fit`` reports it: the training loss, and the validation loss if any."""
    shown = f"epoch {record['epoch']:2d}: train loss {record['train_loss']:.4f}"
    if "valid_loss" in record:
        shown += f", validation loss {record['valid_loss']:.4f}"
    return shown


class MultiTaskNetwork(nn.Module):
    """Embeddings for user, author and topic, their interactions, and the dense features feed shared
    layers; one logit per reaction and a dwell-time regression come out of their own heads."""

    def __init__(self, n_dense: int, n_users: int, n_authors: int, n_topics: int,
                 config: MultiTaskConfig) -> None:
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
        # A shallow position tower: a learned log-odds shift per feed position and reaction, added
        # to the logits. It absorbs position bias in training; serving scores every candidate at
        # position 1.
        self.position_bias = nn.Embedding(config.max_position + 1, len(REACTIONS))
        nn.init.zeros_(self.position_bias.weight)

    def embed(self, dense: torch.Tensor, user: torch.Tensor, author: torch.Tensor,
              topic: torch.Tensor) -> torch.Tensor:
        """The shared layers' input: dense features, three embeddings, two of their products."""
        u, a, t = self.user(user), self.author(author), self.topic(topic)
        return torch.cat([dense, u, a, t, u * t, u * a], dim=1)

    def forward(self, dense: torch.Tensor, user: torch.Tensor, author: torch.Tensor,
                topic: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.shared(self.embed(dense, user, author, topic))
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
    stopping on the validation loss. ``learning_curve`` holds the loss of every epoch."""

    name = "multi-task network"

    def __init__(self, config: MultiTaskConfig | None = None,
                 progress: Callable[[str], None] | None = print) -> None:
        self.config = config or MultiTaskConfig()
        self.config.validate()
        self.progress = progress

    def inputs(self, table: pd.DataFrame, dtype: torch.dtype = torch.float32) -> list[Any]:
        """The network's inputs for a feature table: the encoded dense matrix (of ``dtype``: float32 to serve,
        ``TRAINING_DTYPE`` to train), the user, author and topic embedding rows, and the positions (as torch
        tensors, in the order ``network_`` takes them)."""
        self._require_fitted("transform_")
        encoded = self.transform_.transform(table)
        if not np.isfinite(encoded).all():  # NaN in, NaN out of every head: refused, naming the columns
            columns = [name for name in self.transform_.columns if table[name].isna().any()]
            require("table", f"<{len(table)} rows>", False, f"features without missing values; {columns} have "
                    "some (an unknown user or post, or a column not cleaned)")
        dense = torch.tensor(encoded, dtype=dtype)
        ids = [torch.tensor(index(table[column])) for index, column in
               ((self.users_, "user_id"), (self.authors_, "author_id"), (self.topics_, "topic"))]
        position = table["position"].clip(upper=self.config.max_position).to_numpy(dtype=np.int64)
        return [dense, *ids, torch.tensor(position)]

    def _labels(self, table: pd.DataFrame) -> tuple[Any, Any]:
        """The reaction labels and log dwell of a training or validation table: one row at least, and no label
        missing (a NaN label would make the loss, and then every weight, NaN)."""
        require("table", f"<{len(table)} rows>", len(table) > 0, "a training or validation table of 1 row or more")
        labels = table[[*REACTIONS, "dwell_seconds"]]
        missing = labels.columns[labels.isna().any()].tolist()
        require("table", f"<{len(table)} rows>", not missing, f"labels without missing values; {missing} have some")
        reactions = torch.tensor(table[list(REACTIONS)].to_numpy(dtype=float), dtype=TRAINING_DTYPE)
        seconds = table["dwell_seconds"].to_numpy(dtype=float)
        dwell = torch.tensor(np.log1p(seconds), dtype=TRAINING_DTYPE)
        return reactions, dwell

    def _loss(self, logits: Any, dwell_pred: Any, reactions: Any, dwell: Any) -> tuple[Any, Any]:
        """The weighted sum of each reaction's binary cross-entropy and the dwell head's squared
        error, and the per-reaction losses (for the learning curves)."""
        per_task = F.binary_cross_entropy_with_logits(logits, reactions, reduction="none")
        per_task = per_task.mean(dim=0)
        dwell_loss = F.mse_loss(dwell_pred, dwell)
        dwell_weight = self.config.task_weights["dwell"]
        total = (per_task * self.task_weights_).sum() + dwell_weight * dwell_loss
        return total, per_task

    def prepare(self, train: pd.DataFrame) -> tuple[list[Any], Any, Any]:
        """Fit the encoding and the id indexes on ``train``; return its network inputs, reaction
        labels and dwell. ``fit`` starts here, and so does chapter 8's data-parallel training."""
        # Position reaches the network through its own tower only, not through the dense features.
        default = (name for name in features.MODEL_NUMERIC_FEATURES if name != "position")
        numeric = list(self.config.numeric or default)
        self.pipeline_ = features.feature_pipeline(numeric=numeric).fit(train)
        # The fitted pipeline as array arithmetic, used for training and serving alike: one code
        # path, and a feed request does not pay scikit-learn's per-call overhead.
        self.transform_ = features.CompiledTransform(self.pipeline_)
        self.users_, self.authors_ = _IdIndex(train["user_id"]), _IdIndex(train["author_id"])
        self.topics_ = _IdIndex(train["topic"])
        weights = [self.config.task_weights[r] for r in REACTIONS]
        self.task_weights_ = torch.tensor(weights, dtype=TRAINING_DTYPE)
        return self.inputs(train, TRAINING_DTYPE), *self._labels(train)

    def network_shape(self) -> type[MultiTaskNetwork]:
        """The network class ``new_network`` builds (chapter 4's rungs, ``models.rungs``, build others)."""
        return MultiTaskNetwork

    def new_network(self, n_dense: int) -> tuple[MultiTaskNetwork, torch.optim.Optimizer]:
        """A freshly initialized network for the prepared inputs, and its optimizer (embeddings get
        their own weight decay)."""
        config = self.config
        sizes = len(self.users_), len(self.authors_), len(self.topics_)
        network = self.network_shape()(n_dense, *sizes, config).to(TRAINING_DTYPE)
        embeddings = [p for name, p in network.named_parameters() if name.split(".")[0] in
                      ("user", "author", "topic")]
        others = [p for name, p in network.named_parameters() if name.split(".")[0] not in
                  ("user", "author", "topic")]
        optimizer = torch.optim.AdamW(
            [{"params": embeddings, "weight_decay": config.embedding_weight_decay},
             {"params": others, "weight_decay": config.weight_decay}], lr=config.learning_rate)
        return network, optimizer

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> MultiTask:
        start = time.perf_counter()
        config = self.config
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        inputs, reactions, dwell = self.prepare(train)
        self.network_, optimizer = self.new_network(inputs[0].shape[1])
        valid_inputs = self.inputs(valid, TRAINING_DTYPE) if valid is not None else None
        valid_labels = self._labels(valid) if valid is not None else None
        self.learning_curve: list[dict[str, float]] = []
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
                record.update({f"valid_{r}": float(v)
                               for r, v in zip(REACTIONS, per_task, strict=True)})
            self.learning_curve.append(record)
            if self.progress is not None:
                self.progress(epoch_line(record))
            if valid_inputs is None:
                continue
            if record["valid_loss"] < best - 1e-5:
                best, stale = record["valid_loss"], 0
                best_state = copy.deepcopy(self.network_.state_dict())
            else:
                stale += 1
                if stale >= config.patience:
                    break
        if best_state is not None:
            self.network_.load_state_dict(best_state)
            self.best_epoch = int(np.argmin([h["valid_loss"] for h in self.learning_curve])) + 1
        else:
            self.best_epoch = len(self.learning_curve)
        self.network_.float().eval()  # serve in float32
        self.fit_seconds = time.perf_counter() - start
        return self

    def _evaluate(self, inputs: list[Any], labels: tuple[Any, Any]) -> tuple[float, Any]:
        self.network_.eval()
        with torch.no_grad():
            logits, dwell_pred = self._forward_batches(inputs)
            loss, per_task = self._loss(logits, dwell_pred, *labels)
        return float(loss), per_task

    def _forward_batches(self, inputs: list[Any], batch: int = 65536) -> tuple[Any, Any]:
        # At least one call, so that a table of 0 rows gives 0 predictions rather than nothing to concatenate.
        outputs = [self.network_(*(x[lo:lo + batch] for x in inputs))
                   for lo in range(0, max(len(inputs[0]), 1), batch)]
        return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        self._require_fitted("network_")
        self.network_.eval()
        with torch.no_grad():
            logits, _ = self._forward_batches(self.inputs(table))
        probability = torch.sigmoid(logits).numpy().astype(float)
        return _frame({f"p_{r}": probability[:, i] for i, r in enumerate(REACTIONS)}, table.index)

    def predict_dwell(self, table: pd.DataFrame) -> np.ndarray:
        """Predicted dwell seconds (the dwell head regresses log1p seconds)."""
        self._require_fitted("network_")
        self.network_.eval()
        with torch.no_grad():
            _, dwell = self._forward_batches(self.inputs(table))
        return np.expm1(dwell.numpy().astype(float))

    @property
    def n_parameters(self) -> int:
        self._require_fitted("network_")
        return int(sum(p.numel() for p in self.network_.parameters()))

