"""Data preparation for ranking: cleaning, point-in-time features, encoders, embeddings and the time split.

The central rule: a feature of an impression at time t uses only events logged *before* t. Every aggregate
here is an as-of join (``pandas.merge_asof`` with ``allow_exact_matches=False``) of the request times against
cumulative counts of the log, so the same function computes features for training rows (the impressions
themselves) and for serving requests (any user, post and time): one definition, no training–serving skew.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from newsfeed import vocabulary as vocab
from newsfeed.metrics import engagement_score
from newsfeed.world import REACTIONS, World

#: A column of numbers: smoothed rates work the same on pandas Series and numpy arrays.
ArrayLike = TypeVar("ArrayLike", pd.Series, np.ndarray)

#: Plausible ages for a social network's users; outside it a self-reported age is treated as missing.
VALID_AGE = (13, 100)

#: Prior weighted engagement per impression that smoothed rates start from: a constant, so that a request's
#: features never depend on which other requests are computed with it.
ENGAGEMENT_PRIOR = 0.5

#: How fast user–author affinity forgets: an interaction a week ago counts ``1/e`` of one today.
AFFINITY_DECAY_HOURS = 168.0


# --------------------------------------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------------------------------------
def _country_lookup() -> dict[str, str]:
    lookup = {code.lower(): code for code in vocab.COUNTRIES}
    for code, variants in vocab.COUNTRY_VARIANTS.items():
        lookup.update({variant.strip().lower().replace(".", ""): code for variant in variants})
    return lookup


def normalize_country(raw: pd.Series) -> pd.Series:
    """Map every spelling of a country (``"us "``, ``"USA"``, ``"United States"``) to its ISO code.

    Unknown spellings become missing rather than a new category; ``clean_users`` counts them.
    """
    lookup = _country_lookup()
    keys = raw.astype("str").str.strip().str.lower().str.replace(".", "", regex=False)
    return keys.map(lookup).astype("str")


def clean_users(users: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean the profile table: ISO country codes, impossible ages set to missing.

    Returns the cleaned table (same rows, same order) and a report of what changed, column by column, so
    nothing is altered silently. ``age_was_impossible`` keeps the fact that an age was replaced.
    """
    clean = users.copy()
    clean["country"] = normalize_country(users["country"])
    age = users["age"]
    impossible = age.notna() & ~age.between(*VALID_AGE)
    clean["age"] = age.mask(impossible)
    clean["age_was_impossible"] = impossible
    codes = set(vocab.COUNTRIES)
    report = pd.DataFrame({
        "problem": ["country spelled differently from its ISO code", "country unknown or missing",
                    f"age outside {VALID_AGE[0]}-{VALID_AGE[1]} (set to missing)", "age missing (people)"],
        "rows before": [int((users["country"].notna() & ~users["country"].isin(codes)).sum()),
                        int(users["country"].isna().sum()), int(impossible.sum()),
                        int(age[users["account_type"] == "person"].isna().sum())],
        "rows after": [0, int(clean["country"].isna().sum()), 0,
                       int(clean["age"][users["account_type"] == "person"].isna().sum())],
    })
    return clean, report


def clean_impressions(impressions: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop logging retries: events recorded twice with the same ``impression_id``. Returns the deduplicated
    log (time-ordered) and how many rows were removed."""
    deduped = impressions.drop_duplicates("impression_id", keep="first")
    deduped = deduped.sort_values(["timestamp", "impression_id"], kind="stable").reset_index(drop=True)
    return deduped, len(impressions) - len(deduped)


# --------------------------------------------------------------------------------------------------------
# Point-in-time aggregates
# --------------------------------------------------------------------------------------------------------
def _cumulative(log: pd.DataFrame, keys: list[str], values: dict[str, pd.Series]) -> pd.DataFrame:
    """Running sums of ``values`` per ``keys`` over a time-sorted log: the table an as-of join reads."""
    cumulative = log[keys + ["timestamp"]].copy()
    for name, series in values.items():
        cumulative[name] = series.to_numpy()
    cumulative = cumulative.sort_values("timestamp", kind="stable")
    for name in values:
        cumulative[name] = cumulative.groupby(keys, sort=False)[name].cumsum()
    return cumulative


def _as_of(requests: pd.DataFrame, cumulative: pd.DataFrame, keys: list[str], prefix: str) -> pd.DataFrame:
    """For each request row, the running sums of the last log row with the same ``keys`` strictly before the
    request's ``timestamp``. Missing history gives 0."""
    left = requests[keys + ["timestamp"]].reset_index().sort_values("timestamp", kind="stable")
    left["timestamp"] = left["timestamp"].astype(cumulative["timestamp"].dtype)  # any datetime resolution
    joined = pd.merge_asof(left, cumulative, on="timestamp", by=keys, allow_exact_matches=False,
                           direction="backward")
    values = [c for c in cumulative.columns if c not in (*keys, "timestamp")]
    joined = joined.set_index("index").reindex(requests.index)
    return joined[values].fillna(0.0).add_prefix(prefix)


def _hours(times: pd.Series, origin: pd.Timestamp) -> pd.Series:
    """Hours from ``origin`` to each time."""
    return (times - origin) / pd.Timedelta(hours=1)


class History:
    """The running sums of an impression log (and of who wrote which post), ready for as-of joins.

    Building it sorts and accumulates the log once; ``aggregates`` then answers any batch of requests with
    joins only, which is what a ranker calling it for every feed request needs. Per post, per author, per user,
    per (user, author), per (user, topic) and per (user, media type): impressions and reactions logged before
    the request; the (user, author) engagement also exponentially decayed with ``decay_hours``. From the posts:
    how many posts the user wrote before the request, and how many about its topic.
    """

    def __init__(self, log: pd.DataFrame, posts: pd.DataFrame, decay_hours: float = AFFINITY_DECAY_HOURS) -> None:
        self.post_info = posts.set_index("post_id")[["author_id", "topic", "media_type"]]
        # What never changes about a post, computed once rather than per request batch.
        self.post_static = posts.set_index("post_id")[["author_id", "topic", "media_type", "created_at"]].assign(
            has_text=posts["text"].notna().to_numpy(dtype=float),
            n_hashtags=posts["hashtags"].fillna("").str.split().str.len().to_numpy(dtype=float))
        self.decay_hours = decay_hours
        log = log.join(self.post_info, on="post_id")
        engaged = engagement_score(log).clip(lower=0.0)
        one = pd.Series(1.0, index=log.index)
        reactions = {r: log[r].astype(float) for r in REACTIONS}
        self.origin = log["timestamp"].min() if len(log) else pd.Timestamp("2000-01-01")
        growth = np.exp(_hours(log["timestamp"], self.origin).to_numpy() / decay_hours)
        clicks_likes = {"click": reactions["click"], "like": reactions["like"]}
        written = posts.rename(columns={"author_id": "user_id", "created_at": "timestamp"})
        wrote = pd.Series(1.0, index=written.index)
        specs = [
            (log, ["post_id"], {"impressions": one, "engagement": engaged, **reactions}, "post_"),
            (log, ["author_id"], {"impressions": one, "engagement": engaged}, "author_"),
            (log, ["user_id"], {"impressions": one, "engagement": engaged, **clicks_likes,
                                "dwell": log["dwell_seconds"]}, "user_"),
            (log, ["user_id", "author_id"], {"impressions": one, "engagement": engaged,
                                             "engagement_growth": engaged * growth}, "user_author_"),
            (log, ["user_id", "topic"], {"impressions": one, "engagement": engaged, **clicks_likes}, "user_topic_"),
            (log, ["user_id", "media_type"], {"impressions": one, "engagement": engaged,
                                              "click": reactions["click"]}, "user_media_"),
            (written, ["user_id"], {"posts": wrote}, "user_written_"),
            (written, ["user_id", "topic"], {"posts": wrote}, "user_written_topic_"),
        ]
        self.tables = [(keys, _cumulative(source, keys, values), prefix) for source, keys, values, prefix in specs]
        self.last_events = [table["timestamp"].max() if len(table) else pd.Timestamp.min
                            for _, table, _ in self.tables]
        self._totals: list[pd.DataFrame] | None = None

    def _totals_by_key(self) -> list[pd.DataFrame]:
        """Each table's final running sums per key: the answer for any request after the last event."""
        if self._totals is None:
            self._totals = [table.groupby(keys).last().drop(columns="timestamp") for keys, table, _ in self.tables]
        return self._totals

    def aggregates(self, requests: pd.DataFrame) -> pd.DataFrame:
        """History features for (user_id, post_id, timestamp) requests, in their row order."""
        needed = {"user_id", "post_id", "timestamp"}
        if missing := needed - set(requests.columns):
            raise ValueError(f"requests is missing columns {sorted(missing)}: requests need user_id, post_id, "
                             "timestamp")
        req = requests[["user_id", "post_id", "timestamp"]].join(self.post_info, on="post_id")
        first_request = req["timestamp"].min() if len(req) else pd.Timestamp.min
        parts = []
        for (keys, table, prefix), totals, last in zip(self.tables, self._totals_by_key(), self.last_events,
                                                      strict=True):
            if first_request > last:
                # Every request comes after this table's last event (serving from a snapshot): the as-of join
                # reduces to a lookup of each key's totals, much faster for many small batches.
                where = pd.MultiIndex.from_frame(req[keys]) if len(keys) > 1 else pd.Index(req[keys[0]])
                parts.append(totals.reindex(where).fillna(0.0).set_axis(req.index).add_prefix(prefix))
            else:
                parts.append(_as_of(req, table, keys, prefix))
        out = pd.concat(parts, axis=1)
        shrink = np.exp(-_hours(req["timestamp"], self.origin).to_numpy() / self.decay_hours)
        out["user_author_engagement_decayed"] = out.pop("user_author_engagement_growth") * shrink
        return out


def point_in_time_aggregates(requests: pd.DataFrame, log: pd.DataFrame, posts: pd.DataFrame,
                             decay_hours: float = AFFINITY_DECAY_HOURS) -> pd.DataFrame:
    """History features for (user_id, post_id, timestamp) requests from a clean impression log and the posts:
    ``History(log, posts).aggregates(requests)``, for one-off use."""
    return History(log, posts, decay_hours).aggregates(requests)


def smoothed_rate(count: ArrayLike, exposures: ArrayLike, prior_rate: float | ArrayLike,
                  prior_weight: float = 10.0) -> ArrayLike:
    """``(count + prior_rate * prior_weight) / (exposures + prior_weight)``: a rate that starts at the prior and
    trusts the data as exposures accumulate (additive smoothing)."""
    return (count + prior_rate * prior_weight) / (exposures + prior_weight)


class _Rows:
    """Positions of keys in a table's key column, for fast lookups of its other columns (missing keys give
    missing values), as ``set_index(key).reindex(wanted)`` would, without building a frame per lookup. Keys
    must be unique (one row per user, one edge per pair), as for ``reindex``."""

    def __init__(self, keys: pd.Series | np.ndarray) -> None:
        self.index = pd.Index(keys)

    def take(self, column: pd.Series, wanted: np.ndarray) -> np.ndarray:
        at = self.index.get_indexer(wanted)
        values = column.to_numpy()
        found = values[np.maximum(at, 0)] if len(values) else np.full(len(at), None)
        if (at >= 0).all():
            return found
        missing = np.datetime64("NaT") if values.dtype.kind == "M" else np.nan
        return np.where(at >= 0, found, missing)


def _pair_key(users: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """One 64-bit key per (user, target) pair of ids; a missing target (NaN) becomes a key no edge has."""
    targets = np.nan_to_num(np.asarray(targets, dtype=float), nan=-1).astype(np.int64)
    return (np.asarray(users, dtype=np.int64) << 32) + targets


_WEEKDAYS = np.array(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"], dtype=object)


# --------------------------------------------------------------------------------------------------------
# The feature table
# --------------------------------------------------------------------------------------------------------
NUMERIC_FEATURES: tuple[str, ...] = (
    "post_age_hours", "has_text", "n_hashtags", "author_is_page", "author_followers",
    "post_impressions", "post_engagement_rate", "post_click_rate", "post_like_rate", "post_hide_rate",
    "author_engagement_rate", "user_impressions", "user_click_rate", "user_like_rate", "user_mean_dwell",
    "user_author_impressions", "user_author_engagement_decayed", "user_topic_engagement_rate",
    "user_topic_click_rate", "user_topic_like_rate", "user_media_engagement_rate", "user_media_click_rate",
    "user_posts", "user_posts_topic_share", "is_friend", "is_follow", "account_age_days", "hour_sin", "hour_cos",
    "position",
)
#: Counts whose distributions are heavy-tailed: log1p before scaling.
LOG_FEATURES: tuple[str, ...] = ("post_age_hours", "author_followers", "post_impressions", "user_impressions",
                                 "user_author_impressions", "user_author_engagement_decayed", "account_age_days",
                                 "user_mean_dwell", "user_posts")
CATEGORICAL_FEATURES: tuple[str, ...] = ("topic", "media_type", "device", "source", "country", "weekday")
LABELS: tuple[str, ...] = (*REACTIONS, "dwell_seconds")


def feature_table(requests: pd.DataFrame, log: pd.DataFrame | None, posts: pd.DataFrame | None,
                  users: pd.DataFrame, edges: pd.DataFrame, history: History | None = None,
                  followers: np.ndarray | None = None) -> pd.DataFrame:
    """Features for ranking requests (``user_id``, ``post_id``, ``timestamp``, ``device``, ``position``,
    ``source``), computed point-in-time from a clean log and cleaned users.

    Training rows are the log's own impressions (``requests = log``); serving rows are candidates at request
    time (``position = 1``). Label columns present in ``requests`` are carried along. Pass a ``History`` of
    ``log`` to answer many batches of requests without re-accumulating the log each time (``log`` and ``posts``
    are then not read and may be None), and ``followers`` (each row's author's follower count at its time)
    when a feature store has counted them already; otherwise they are counted from ``edges``.

    The columns are computed as arrays and assembled into one frame at the end: a feed request computes this
    table for a few hundred candidates within its latency budget, so per-column pandas overhead matters.
    """
    if history is None:
        if log is None or posts is None:
            raise ValueError("log=None is invalid without a history: feature_table accepts the log and the posts, "
                             "or a History of them")
        history = History(log, posts)
    pit = {name: column.to_numpy() for name, column in history.aggregates(requests).items()}
    post = history.post_static.reindex(requests["post_id"])
    when = requests["timestamp"].to_numpy()
    author_id = post["author_id"].to_numpy()
    columns: dict[str, object] = {}
    for column in ("impression_id", "session_id"):  # identifiers of logged rows, carried along
        if column in requests.columns:
            columns[column] = requests[column]
    for column in ("user_id", "post_id", "timestamp", "device", "position", "source"):
        columns[column] = requests[column]
    columns["author_id"] = author_id
    columns["topic"] = post["topic"].to_numpy()
    columns["media_type"] = post["media_type"].to_numpy()
    columns["post_age_hours"] = ((when - post["created_at"].to_numpy()) / pd.Timedelta(hours=1)).clip(min=0)
    columns["has_text"] = post["has_text"].to_numpy()
    columns["n_hashtags"] = post["n_hashtags"].to_numpy()

    account = _Rows(users["user_id"])
    columns["author_is_page"] = (account.take(users["account_type"], author_id) == "page").astype(float)
    if followers is None:
        # Followers as of the request: edges made later (a new user following a page tomorrow) are the future.
        made = edges.rename(columns={"target_id": "author_id", "created_at": "timestamp"})
        followed = _cumulative(made, ["author_id"], {"followers": pd.Series(1.0, index=made.index)})
        asked = pd.DataFrame({"author_id": author_id, "timestamp": requests["timestamp"]})
        followers = _as_of(asked, followed, ["author_id"], "")["followers"].to_numpy()
    elif len(followers) != len(requests):
        raise ValueError(f"followers has {len(followers)} values, which is invalid: followers accepts one count "
                         f"per request row ({len(requests)})")
    columns["author_followers"] = np.asarray(followers, dtype=float)

    base = ENGAGEMENT_PRIOR
    columns["post_impressions"] = pit["post_impressions"]
    columns["post_engagement_rate"] = smoothed_rate(pit["post_engagement"], pit["post_impressions"], base)
    for reaction, prior in (("click", 0.1), ("like", 0.04), ("hide", 0.003)):
        columns[f"post_{reaction}_rate"] = smoothed_rate(pit[f"post_{reaction}"], pit["post_impressions"], prior)
    columns["author_engagement_rate"] = smoothed_rate(pit["author_engagement"], pit["author_impressions"], base)
    columns["user_impressions"] = pit["user_impressions"]
    user_rates = {"click": smoothed_rate(pit["user_click"], pit["user_impressions"], 0.1),
                  "like": smoothed_rate(pit["user_like"], pit["user_impressions"], 0.04)}
    columns["user_click_rate"], columns["user_like_rate"] = user_rates["click"], user_rates["like"]
    columns["user_mean_dwell"] = smoothed_rate(pit["user_dwell"], pit["user_impressions"], 5.0)
    user_rate = smoothed_rate(pit["user_engagement"], pit["user_impressions"], base)
    columns["user_author_impressions"] = pit["user_author_impressions"]
    columns["user_author_engagement_decayed"] = pit["user_author_engagement_decayed"]
    columns["user_topic_engagement_rate"] = smoothed_rate(pit["user_topic_engagement"],
                                                          pit["user_topic_impressions"], user_rate)
    for reaction in ("click", "like"):
        columns[f"user_topic_{reaction}_rate"] = smoothed_rate(
            pit[f"user_topic_{reaction}"], pit["user_topic_impressions"], user_rates[reaction])
    columns["user_media_engagement_rate"] = smoothed_rate(pit["user_media_engagement"],
                                                          pit["user_media_impressions"], user_rate)
    # Clicks per media type: some people open every video and scroll past text (their media preference).
    columns["user_media_click_rate"] = smoothed_rate(pit["user_media_click"], pit["user_media_impressions"],
                                                     user_rates["click"])
    columns["user_posts"] = pit["user_written_posts"]
    columns["user_posts_topic_share"] = smoothed_rate(pit["user_written_topic_posts"], pit["user_written_posts"],
                                                      1 / len(vocab.TOPICS), 2.0)

    # The edge from the viewer to the author, if any, found by one hash lookup on a combined 64-bit key.
    relation = _Rows(_pair_key(edges["user_id"].to_numpy(), edges["target_id"].to_numpy()))
    pair = _pair_key(requests["user_id"].to_numpy(), author_id)
    created = relation.take(edges["created_at"], pair)
    kind = relation.take(edges["edge_type"], pair)
    known = pd.notna(created) & (created < when)
    columns["is_friend"] = (known & (kind == "friend")).astype(float)
    columns["is_follow"] = (known & (kind == "follow")).astype(float)

    viewer = requests["user_id"].to_numpy()
    columns["age"] = account.take(users["age"], viewer)
    columns["country"] = account.take(users["country"], viewer)
    columns["account_age_days"] = ((when - account.take(users["signup_date"], viewer)) / pd.Timedelta(days=1)).clip(
        min=0)
    minutes = (when - when.astype("datetime64[D]")).astype("timedelta64[m]").astype(np.int64)
    hour = minutes // 60 + (minutes % 60) / 60  # hour + minute / 60, computed as pandas' dt accessors would
    columns["hour_sin"] = np.sin(2 * np.pi * hour / 24)
    columns["hour_cos"] = np.cos(2 * np.pi * hour / 24)
    day = when.astype("datetime64[D]").astype(np.int64)
    columns["weekday"] = pd.Series(_WEEKDAYS[(day + 3) % 7], index=requests.index).astype("str")  # 1970-01-01: Thu
    for label in LABELS:
        if label in requests.columns:
            columns[label] = requests[label]
    return pd.DataFrame(columns, index=requests.index)


# --------------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------------
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
    elif age != "none":
        raise ValueError(f"age={age!r} is invalid: age accepts 'mean', 'median', 'indicator' or 'none'")
    return ColumnTransformer(transformers, verbose_feature_names_out=False)


class CompiledTransform:
    """A fitted ``feature_pipeline`` (any ``ColumnTransformer`` of the steps it uses) as plain numpy operations.

    scikit-learn checks and copies its input at every call, which is cheap for a million rows and expensive
    for the few hundred candidates of one feed request. This reads the fitted statistics (means, scales,
    medians, category lists) once and applies them with array arithmetic: the same matrix, in the same column
    order, at a fraction of the cost. A test holds it equal to ``transformer.transform``.
    """

    def __init__(self, transformer: ColumnTransformer) -> None:
        if not hasattr(transformer, "transformers_"):
            raise ValueError("transformer is invalid: CompiledTransform accepts a fitted ColumnTransformer")
        self.transformer = transformer
        self.steps: list[tuple[list[str], bool, Callable[[np.ndarray], np.ndarray]]] = []
        for _, fitted, columns in transformer.transformers_:
            if isinstance(fitted, str) and fitted == "drop":
                continue
            self.steps.append((list(columns), isinstance(fitted, OneHotEncoder), _compile_step(fitted)))
        self.n_features_out = len(transformer.get_feature_names_out())

    def __getstate__(self) -> dict[str, ColumnTransformer]:  # closures do not pickle: keep the fitted pipeline
        return {"transformer": self.transformer}

    def __setstate__(self, state: dict[str, ColumnTransformer]) -> None:
        self.__init__(state["transformer"])  # type: ignore[misc]

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """The model matrix of ``table``'s rows: float64, one column per output feature."""
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


# --------------------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeSplit:
    """Train on the first weeks, validate on the next, test on the last: the model is always judged on a
    future it has not seen, as it will be in production."""

    train_end: pd.Timestamp
    valid_end: pd.Timestamp

    def assign(self, timestamps: pd.Series) -> pd.Series:
        """``train`` / ``valid`` / ``test`` for each timestamp."""
        split = np.where(timestamps < self.train_end, "train",
                         np.where(timestamps < self.valid_end, "valid", "test"))
        return pd.Series(split, index=timestamps.index, name="split", dtype="str")


def weekly_split(start: str | pd.Timestamp, train_weeks: int = 2, valid_weeks: int = 1) -> TimeSplit:
    """The book's split of a four-week world: weeks 1–2 train, week 3 validation, week 4 test."""
    if train_weeks < 1 or valid_weeks < 1:
        raise ValueError("train_weeks and valid_weeks accept integers >= 1")
    start = pd.Timestamp(start)
    return TimeSplit(start + pd.Timedelta(weeks=train_weeks), start + pd.Timedelta(weeks=train_weeks + valid_weeks))


@dataclass
class Dataset:
    """The ranking dataset: one row of features and labels per clean impression, with its split."""

    table: pd.DataFrame
    split: pd.Series
    users: pd.DataFrame
    log: pd.DataFrame
    text: pd.DataFrame  # each post's text embedding, indexed by post_id
    posts: pd.DataFrame  # the posts with their topic read from the text (``topic``) and as labelled (``topic_label``)

    def part(self, *names: str) -> pd.DataFrame:
        """The rows of the named splits (``"train"``, ``"valid"``, ``"test"``)."""
        unknown = set(names) - {"train", "valid", "test"}
        if unknown or not names:
            raise ValueError(f"names={names!r} is invalid: names accepts one or more of 'train', 'valid', 'test'")
        return self.table[self.split.isin(names)]

    def history(self, log: pd.DataFrame) -> History:
        """The aggregates of ``log`` (the log as of a feature refresh) over this dataset's posts, whose topics
        are read from the text, as training saw them."""
        return History(log, self.posts)


#: Text-embedding columns ``build_dataset`` adds (see ``text_vectors``).
TEXT_FEATURES: tuple[str, ...] = tuple(f"text_{i}" for i in range(16))
#: The numeric inputs of the book's models: the feature table's numbers and the text embedding.
MODEL_NUMERIC_FEATURES: tuple[str, ...] = NUMERIC_FEATURES + TEXT_FEATURES


def build_dataset(world: World, split: TimeSplit | None = None, seed: int = 0) -> Dataset:
    """Clean the world's tables, read each post's topic from its text (the labels are noisy), compute every
    feature point-in-time and join each post's text embedding (fitted on the training weeks' posts): the table
    chapters 4–7 train on."""
    users, _ = clean_users(world.users)
    log, _ = clean_impressions(world.impressions)
    split = split if split is not None else weekly_split(world.config.start)
    posts = clean_posts(world.posts, fit_until=split.train_end)
    table = feature_table(log, log, posts, users, world.edges)
    text = text_vectors(world.posts, fit_until=split.train_end, dimensions=len(TEXT_FEATURES), seed=seed)
    table = table.join(text, on="post_id")
    return Dataset(table=table, split=split.assign(table["timestamp"]), users=users, log=log, text=text,
                   posts=posts)


def clean_posts(posts: pd.DataFrame, fit_until: pd.Timestamp) -> pd.DataFrame:
    """The posts with ``topic`` read from their text by ``infer_topics`` (the tagger's labels are noisy), the
    original label kept as ``topic_label``."""
    return posts.assign(topic_label=posts["topic"], topic=infer_topics(posts, fit_until=fit_until))


def topic_classifier() -> Pipeline:
    """TF-IDF over a post's words and hashtags, then multinomial logistic regression over the topics."""
    return Pipeline([("tfidf", TfidfVectorizer(min_df=2, sublinear_tf=True)),
                     ("classify", LogisticRegression(max_iter=2000, C=10.0))])


def infer_topics(posts: pd.DataFrame, fit_until: pd.Timestamp, folds: int = 5) -> pd.Series:
    """Each post's topic as its text says, from a classifier trained on the (noisy) labels of posts created
    before ``fit_until``.

    A classifier trained on noisy labels can beat them: the mistakes are scattered, while the words of each
    topic are consistent, so the model learns the words and outvotes the odd wrong label. Posts it is trained on
    get out-of-fold predictions (``folds``-fold cross-validation), so a post's own label, right or wrong, never
    decides its predicted topic, and training rows get topics as accurate as the later posts', which are
    predicted by the model fitted on all of them (as serving predicts a new post's topic).
    """
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds={folds!r} is invalid: folds accepts an integer >= 2")
    texts = posts["text"].fillna("") + " " + posts["hashtags"].fillna("")
    labels = posts["topic"].astype(str).to_numpy()
    fitted = (posts["created_at"] < fit_until).to_numpy()
    if fitted.sum() < folds or len(set(labels[fitted])) < 2:
        raise ValueError(f"fit_until={fit_until} is invalid: infer_topics needs posts of at least two topics "
                         f"created before it ({int(fitted.sum())} posts)")
    topics = topic_classifier().fit(texts[fitted], labels[fitted]).predict(texts).astype(object)
    topics[fitted] = cross_val_predict(topic_classifier(), texts[fitted], labels[fitted], cv=folds)
    return pd.Series(topics, index=posts.index, name="topic", dtype="str")


# --------------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------------
def text_embedder(dimensions: int = 16, seed: int = 0) -> Pipeline:
    """TF-IDF over words and word pairs, reduced by truncated SVD (latent semantic analysis) to dense vectors."""
    return Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
                     ("svd", TruncatedSVD(n_components=dimensions, random_state=seed))])


def text_vectors(posts: pd.DataFrame, fit_until: pd.Timestamp, dimensions: int = 16,
                 seed: int = 0) -> pd.DataFrame:
    """Dense text vectors for every post, from an embedder fitted only on posts created before ``fit_until``
    (the vocabulary of the future is not known at training time). Posts without text get the vector of ""."""
    texts = posts["text"].fillna("")
    embedder = text_embedder(dimensions, seed).fit(texts[posts["created_at"] < fit_until])
    vectors = embedder.transform(texts)
    return pd.DataFrame(vectors, index=posts["post_id"], columns=[f"text_{i}" for i in range(dimensions)])


def interaction_embeddings(log: pd.DataFrame, n_users: int, n_items: int, item: str = "post_id",
                           dimensions: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """User and item embeddings from the user × item engagement matrix by truncated SVD (matrix factorization).

    Cells hold the log of one plus the weighted engagement; users and items that interact with the same
    things end up close. Returns (user vectors, item vectors), rows indexed by id.
    """
    from scipy.sparse import csr_matrix

    engaged = engagement_score(log).clip(lower=0.0)
    keep = engaged > 0
    matrix = csr_matrix((np.log1p(engaged[keep].to_numpy()), (log.loc[keep, "user_id"].to_numpy(),
                                                               log.loc[keep, item].to_numpy())),
                        shape=(n_users, n_items))
    svd = TruncatedSVD(n_components=dimensions, random_state=seed)
    users = svd.fit_transform(matrix)  # U * S
    scale = np.sqrt(np.maximum(svd.singular_values_, 1e-12))
    return users / scale, svd.components_.T * scale  # U * sqrt(S), V * sqrt(S): dot products give the fit


def nearest_neighbours(vectors: np.ndarray, query: int, k: int = 5) -> np.ndarray:
    """Indices of the ``k`` rows most cosine-similar to row ``query`` (itself excluded)."""
    norms = np.linalg.norm(vectors, axis=1)
    similarity = vectors @ vectors[query] / np.maximum(norms * norms[query], 1e-12)
    similarity[query] = -np.inf
    similarity[norms == 0] = -np.inf
    return np.argsort(-similarity, kind="stable")[:k]


# --------------------------------------------------------------------------------------------------------
# Baselines that only need the log
# --------------------------------------------------------------------------------------------------------
def post_counts_so_far(impressions: pd.DataFrame) -> pd.DataFrame:
    """For each impression, its post's impressions and (non-negative) weighted engagement logged *before* it.

    Events are ordered by ``timestamp`` then ``impression_id``; the impression itself is excluded, so the
    feature never sees its own label. Returned in the row order of ``impressions``.
    """
    needed = {"impression_id", "post_id", "timestamp"}
    missing = needed - set(impressions.columns)
    if missing:
        raise ValueError(f"impressions is missing columns {sorted(missing)}")
    ordered = impressions.sort_values(["timestamp", "impression_id"], kind="stable")
    earned = engagement_score(ordered).clip(lower=0.0)
    by_post = ordered["post_id"]
    out = pd.DataFrame({
        "impressions_so_far": by_post.groupby(by_post).cumcount().astype(np.int64),
        "engagement_so_far": earned.groupby(by_post).cumsum() - earned,
    }, index=ordered.index)
    return out.reindex(impressions.index)


def popularity_score(counts: pd.DataFrame, prior_impressions: float = 10.0, prior_rate: float = 0.1) -> pd.Series:
    """Smoothed engagement per impression so far: a post needs exposure before its rate is trusted.

    ``(engagement_so_far + prior_rate * prior_impressions) / (impressions_so_far + prior_impressions)``; a
    post nobody has seen scores ``prior_rate``.
    """
    if prior_impressions <= 0:
        raise ValueError(f"prior_impressions={prior_impressions!r} is invalid: accepts a number > 0")
    return smoothed_rate(counts["engagement_so_far"], counts["impressions_so_far"], prior_rate, prior_impressions)
