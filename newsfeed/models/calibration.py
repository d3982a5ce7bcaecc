"""Recalibrating a ranker's heads on fresh data: one Platt scaling per reaction.

The feed's score adds the heads' probabilities with weights (``metrics.engagement_score``), so a head that
over-predicts by a tenth quietly gets a tenth more weight than the objective gave it. A trained network's heads
drift off calibration from one training seed to the next, and as the world moves on after training. Platt
scaling fits, per head, ``p' = sigmoid(a * logit(p) + b)`` by maximum likelihood on labelled rows the model did
not train on: two numbers per head, enough data even for rare reactions, and monotone, so each head's own
ranking (its ROC-AUC) is unchanged; only how the heads add up in the score changes. ``CalibratedNightly``
refits it every night on every labelled day since the model shipped, as a team keeps a deployed model's heads
honest: each day is calibrated by the days before it, never by its own labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from newsfeed.models.ranker import PROBABILITY_COLUMNS, Ranker
from newsfeed.validation import require, require_columns
from newsfeed.world import REACTIONS

#: Probabilities are clipped this far from 0 and 1 before taking their logit.
EPSILON = 1e-7


def _logit(probability: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probability, dtype=float), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class PlattScaling:
    """Per reaction, the slope and intercept that map a head's logit to a calibrated one."""

    coefficients: dict[str, tuple[float, float]]

    @classmethod
    def fit(cls, predicted: pd.DataFrame, labels: pd.DataFrame) -> PlattScaling:
        """Fit each head's two numbers on ``predicted`` (``p_<reaction>`` columns) against the 0/1
        ``labels`` (a column per reaction) of the same rows: logistic regression, without a penalty,
        on the head's logit."""
        require_columns("predicted", predicted, list(PROBABILITY_COLUMNS))
        require_columns("labels", labels, list(REACTIONS))
        coefficients = {}
        for reaction in REACTIONS:
            y = labels[reaction].to_numpy()
            positives = int(np.sum(y > 0))
            found = f"{positives} positive {reaction} labels of {len(y)}"
            both = f"rows with at least one positive and one negative {reaction}"
            require("labels", found, 0 < positives < len(y), both)
            x = _logit(predicted[f"p_{reaction}"].to_numpy())[:, None]
            fitted = LogisticRegression(C=np.inf).fit(x, (y > 0).astype(int))
            coefficients[reaction] = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
        return cls(coefficients)

    def apply(self, predicted: pd.DataFrame) -> pd.DataFrame:
        """The calibrated probabilities of ``predicted``, same columns and rows."""
        out = predicted.copy()
        for reaction, (slope, intercept) in self.coefficients.items():
            column = f"p_{reaction}"
            logit = slope * _logit(predicted[column].to_numpy()) + intercept
            out[column] = 1 / (1 + np.exp(-logit))
        return out


class Calibrated(Ranker):
    """A fitted ranker whose heads pass through ``PlattScaling`` fitted on fresh rows (``fit``)."""

    def __init__(self, ranker: Ranker) -> None:
        self.ranker = ranker
        self.name = f"{ranker.name}, recalibrated"

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> Calibrated:
        """Fit the scaling on ``train``: labelled rows the wrapped ranker did not learn from."""
        self.scaling_ = PlattScaling.fit(self.ranker.predict(train), train)
        return self

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        self._require_fitted("scaling_")
        return self.scaling_.apply(self.ranker.predict(table))


@dataclass(frozen=True)
class NightlyScaling:
    """A ``PlattScaling`` per day, each fitted on the labelled rows of the days before it: what a
    team that refits its calibration every night on all labels since the model shipped used."""

    scalings: dict[pd.Timestamp, PlattScaling]

    @classmethod
    def fit(cls, predicted: pd.DataFrame, labels: pd.DataFrame, first_days: int = 2
            ) -> NightlyScaling:
        """One scaling per day of ``labels`` (0/1 reactions and ``timestamp``; rows as in
        ``predicted``) after its first ``first_days`` days, and one for the day after its last, each
        fitted on the rows of the days before it: no day is calibrated on its own labels."""
        require("first_days", first_days, first_days >= 1, "an integer >= 1 (days before a refit)")
        require_columns("labels", labels, ["timestamp", *REACTIONS])
        days = labels["timestamp"].dt.floor("D")
        first, last = days.min(), days.max()
        span = f"{(last - first).days + 1} days of rows"
        require("labels", span, (last - first).days >= first_days, f"more than {first_days} days")
        nights = pd.date_range(first + pd.Timedelta(days=first_days), last + pd.Timedelta(days=1))
        before = {night: (days < night).to_numpy() for night in nights}
        return cls({night: PlattScaling.fit(predicted[rows], labels[rows])
                    for night, rows in before.items()})

    def apply(self, predicted: pd.DataFrame, timestamps: pd.Series) -> pd.DataFrame:
        """Each row's probabilities through its day's scaling (later days use the last one)."""
        nights = pd.DatetimeIndex(list(self.scalings))
        days = pd.Series(timestamps).dt.floor("D").clip(upper=nights.max()).to_numpy()
        earliest = pd.Timestamp(days.min() if len(days) else nights.min())
        require("timestamps", f"rows from {earliest.date()}", earliest >= nights.min(),
                f"rows from {nights.min().date()} on (the first day with a refit)")
        out = predicted.copy()
        for day in np.unique(days):
            rows = days == day
            out.loc[rows] = self.scalings[pd.Timestamp(day)].apply(predicted.loc[rows]).to_numpy()
        return out


class CalibratedNightly(Ranker):
    """A fitted ranker whose heads are recalibrated every night (``NightlyScaling``): a single fit
    on the first days goes stale as the model ages and rests on those days' few positives of a rare
    reaction; a nightly refit on all labels so far follows the model and gains a day of evidence."""

    def __init__(self, ranker: Ranker, first_days: int = 2) -> None:
        require("first_days", first_days, first_days >= 1, "an integer >= 1 (days before a refit)")
        self.ranker = ranker
        self.first_days = first_days
        self.name = f"{ranker.name}, recalibrated nightly"

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> CalibratedNightly:
        """Fit the scalings on ``train``: labelled rows the wrapped ranker did not learn from."""
        self.scaling_ = NightlyScaling.fit(self.ranker.predict(train), train, self.first_days)
        return self

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        self._require_fitted("scaling_")
        return self.scaling_.apply(self.ranker.predict(table), table["timestamp"])
