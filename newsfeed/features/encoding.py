"""Encoding: the scikit-learn pipeline that turns a feature table into a model matrix, and the same fitted
pipeline compiled to plain numpy for the few hundred rows of one feed request."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from newsfeed.features.table import CATEGORICAL_FEATURES, LOG_FEATURES, NUMERIC_FEATURES
from newsfeed.validation import require, require_columns


def feature_pipeline(numeric: Iterable[str] = NUMERIC_FEATURES, categorical: Iterable[str] = CATEGORICAL_FEATURES,
                     age: str = "indicator") -> ColumnTransformer:
    """The scikit-learn transformer that turns a feature table into a model matrix.

    Heavy-tailed counts are log-scaled, all numbers standardized; low-cardinality categories are one-hot
    encoded, with unseen categories (a new device after launch) encoded as all zeros rather than an error.
    ``age`` chooses how a missing age is filled: ``"mean"``, ``"median"``, ``"indicator"`` (median plus a
    was-missing column) or ``"none"`` (leave age out).
    """
    numeric, categorical = list(numeric), list(categorical)
    logged = [c for c in numeric if c in LOG_FEATURES]
    plain = [c for c in numeric if c not in LOG_FEATURES]
    transformers = [
        ("log_scaled", Pipeline([("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one")),
                                 ("scale", StandardScaler())]), logged),
        ("scaled", StandardScaler(), plain),
        ("one_hot", OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=False), categorical),
    ]
    strategies = {"mean": "mean", "median": "median", "indicator": "median"}
    if age in strategies:
        # keep_empty_features: an all-missing age column still yields its column (no silent drop).
        imputer = SimpleImputer(strategy=strategies[age], keep_empty_features=True)
        imputed = Pipeline([("impute", imputer), ("scale", StandardScaler())])
        if age == "indicator":  # features="all": the column exists even if training had no missing age
            imputed = FeatureUnion([("value", imputed), ("missing", MissingIndicator(features="all"))])
        transformers.append(("age", imputed, ["age"]))
    else:
        require("age", age, age == "none", "'mean', 'median', 'indicator' or 'none'")
    return ColumnTransformer(transformers, verbose_feature_names_out=False)


class CompiledTransform:
    """A fitted ``feature_pipeline`` (any ``ColumnTransformer`` of the steps it uses) as plain numpy operations.

    scikit-learn checks and copies its input at every call, which is cheap for a million rows and expensive
    for the few hundred candidates of one feed request. This reads the fitted statistics (means, scales,
    medians, category lists) once and applies them with array arithmetic: the same matrix, in the same column
    order, at a fraction of the cost. A test holds it equal to ``transformer.transform``.
    """

    def __init__(self, transformer: ColumnTransformer) -> None:
        require("transformer", type(transformer).__name__, hasattr(transformer, "transformers_"),
                "a fitted ColumnTransformer")
        self.transformer = transformer
        self.steps: list[tuple[list[str], bool, Callable[[np.ndarray], np.ndarray]]] = []
        for _, fitted, columns in transformer.transformers_:
            if isinstance(fitted, str) and fitted == "drop":
                continue
            self.steps.append((list(columns), isinstance(fitted, OneHotEncoder), _compile_step(fitted)))
        self.n_features_out = len(transformer.get_feature_names_out())
        self.columns = [column for columns, _, _ in self.steps for column in columns]

    def __getstate__(self) -> dict[str, ColumnTransformer]:  # closures do not pickle: keep the fitted pipeline
        return {"transformer": self.transformer}

    def __setstate__(self, state: dict[str, ColumnTransformer]) -> None:
        self.__init__(state["transformer"])  # type: ignore[misc]

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """The model matrix of ``table``'s rows: float64, one column per output feature."""
        require_columns("table", table, self.columns)
        # Column by column: selecting a sub-frame first would copy and consolidate it on every call.
        blocks = [step(np.column_stack([table[c].to_numpy(dtype=object if categorical else float, na_value=np.nan)
                                        for c in columns]))
                  for columns, categorical, step in self.steps]
        return np.hstack(blocks) if blocks else np.empty((len(table), 0))


def _compile_step(step: object) -> Callable[[np.ndarray], np.ndarray]:
    """One fitted scikit-learn step as a function of an array; raises for steps it does not know."""
    if isinstance(step, str) and step == "passthrough":
        return lambda x: x
    if isinstance(step, Pipeline):
        parts = [_compile_step(inner) for _, inner in step.steps if inner not in (None, "passthrough")]

        def run(x: np.ndarray) -> np.ndarray:
            for part in parts:
                x = part(x)
            return x
        return run
    if isinstance(step, FeatureUnion) and step.transformer_weights is None:
        parts = [_compile_step(inner) for _, inner in step.transformer_list if inner != "drop"]
        return lambda x: np.hstack([part(x) for part in parts])
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else 0.0
        scale = step.scale_ if step.with_std else 1.0
        return lambda x: (x - mean) / scale
    if isinstance(step, FunctionTransformer):
        func, kwargs = step.func, step.kw_args or {}
        return (lambda x: func(x, **kwargs)) if func is not None else (lambda x: x)
    if isinstance(step, SimpleImputer) and _is_nan(step.missing_values):
        fill = step.statistics_.astype(float)
        return lambda x: np.where(np.isnan(x), fill, x)
    if isinstance(step, MissingIndicator) and _is_nan(step.missing_values):
        chosen = step.features_
        return lambda x: np.isnan(x[:, chosen]).astype(float)
    if isinstance(step, OneHotEncoder) and step.drop is None and step.handle_unknown == "ignore":
        return _compile_one_hot(step)
    raise TypeError(f"step={step!r} is invalid: CompiledTransform accepts StandardScaler, FunctionTransformer, "
                    "SimpleImputer and MissingIndicator (missing values NaN), OneHotEncoder (drop=None, "
                    "handle_unknown='ignore'), and Pipelines and FeatureUnions of them")


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and np.isnan(value)


def _compile_one_hot(encoder: OneHotEncoder) -> Callable[[np.ndarray], np.ndarray]:
    """Each category's output column, found with a hash lookup (``Index.get_indexer``, which also matches a
    missing value to a missing category). Infrequent categories share one column placed after the frequent
    ones; unknown categories get no column (all zeros), as with ``handle_unknown="ignore"``."""
    lookups: list[tuple[pd.Index, np.ndarray]] = []
    offset = 0
    for i, categories in enumerate(encoder.categories_):
        infrequent = encoder.infrequent_categories_[i] if hasattr(encoder, "infrequent_categories_") else None
        rare = np.zeros(len(categories), dtype=bool)
        if infrequent is not None and len(infrequent):
            rare = pd.Index(categories).isin(infrequent)
        column = np.empty(len(categories), dtype=np.int64)
        column[~rare] = offset + np.arange(int((~rare).sum()))
        column[rare] = offset + int((~rare).sum())
        lookups.append((pd.Index(categories), np.append(column, -1)))  # position -1 (unknown) -> no column
        offset += int((~rare).sum()) + int(rare.any())
    width = offset

    def one_hot(x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), width))
        for i, (index, column) in enumerate(lookups):
            target = column[index.get_indexer(x[:, i])]
            rows = np.flatnonzero(target >= 0)
            out[rows, target[rows]] = 1.0
        return out
    return one_hot

