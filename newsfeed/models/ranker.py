"""The interface every ranker implements, how a ranker is served, and the negative-sampling correction."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from newsfeed.metrics import engagement_score
from newsfeed.validation import require_float
from newsfeed.world import REACTIONS

PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{r}" for r in REACTIONS)


def serving_view(table: pd.DataFrame) -> pd.DataFrame:
    """The rows as the ranker sees them when serving: every candidate scored as if shown at the top.

    Position is a training feature (it explains position bias in the logs) and a constant when ranking, so
    the ranking reflects the post, not where the old ranker happened to put it.
    """
    return table.assign(position=1)


def correct_for_negative_sampling(probability: np.ndarray, negative_rate: float) -> np.ndarray:
    """Undo the shift a model learns when only ``negative_rate`` of the negatives were kept.

    Odds are inflated by ``1 / negative_rate``; ``p = p' / (p' + (1 - p') / negative_rate)``
    restores them (He et al., 2014).
    """
    require_float("negative_rate", negative_rate, 0.0, 1.0, open_lo=True)
    probability = np.asarray(probability, dtype=float)
    return probability / (probability + (1.0 - probability) / negative_rate)


def downsample_negatives(rows: pd.DataFrame, label: str, negative_rate: float, seed: int = 0) -> pd.DataFrame:
    """All positives of ``label`` and a random ``negative_rate`` share of its negatives."""
    require_float("negative_rate", negative_rate, 0.0, 1.0, open_lo=True)
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

    def _require_fitted(self, learned: str) -> None:
        """Refuse to predict before ``fit`` has set the attribute ``learned``."""
        if not hasattr(self, learned):
            raise NotFittedError(f"this {self.name} is not fitted yet: call fit(train) before predict or score")


def _frame(values: Mapping[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame({column: values[column] for column in PROBABILITY_COLUMNS}, index=index)

