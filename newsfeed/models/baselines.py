"""The baselines every model must beat: reverse-chronological, popularity, and one scikit-learn classifier per
reaction (logistic regression, gradient-boosted trees)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from newsfeed import features
from newsfeed.models.ranker import (
    PROBABILITY_COLUMNS,
    Ranker,
    _frame,
    correct_for_negative_sampling,
    downsample_negatives,
)
from newsfeed.world import REACTIONS


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
        self._require_fitted("rate_of_engagement_")
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
        self._require_fitted("models_")
        out = {}
        for reaction, model in self.models_.items():
            probability = model.predict_proba(table)[:, 1]
            out[f"p_{reaction}"] = correct_for_negative_sampling(probability, self.negative_rate)
        return _frame(out, table.index)

    @property
    def n_parameters(self) -> int:
        self._require_fitted("models_")
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

