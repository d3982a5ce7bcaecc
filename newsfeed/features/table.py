"""The feature table: one row of model features per (user, post, time) request, computed point-in-time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from newsfeed import vocabulary as vocab
from newsfeed.features.aggregates import AggregateSource, follower_sums, followers_at, smoothed_rate
from newsfeed.validation import require, require_columns, require_known
from newsfeed.world import REACTIONS

#: Prior weighted engagement per impression that smoothed rates start from: a constant, so that a request's
#: features never depend on which other requests are computed with it.
ENGAGEMENT_PRIOR = 0.5
#: Prior rate of each reaction per impression, where a post or a user has no history yet: about the log's
#: overall rates (chapter 3 measures them).
REACTION_PRIORS: dict[str, float] = {"click": 0.1, "like": 0.04, "hide": 0.003}
#: The columns a feature request carries (``position`` is 1 when serving; see ``models.serving_view``).
REQUEST_COLUMNS: tuple[str, ...] = ("user_id", "post_id", "timestamp", "device", "position", "source")


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


def feature_table(requests: pd.DataFrame, users: pd.DataFrame, edges: pd.DataFrame, aggregates: AggregateSource,
                  followers: np.ndarray | None = None) -> pd.DataFrame:
    """Features for ranking requests (``user_id``, ``post_id``, ``timestamp``, ``device``, ``position``,
    ``source``), computed point-in-time from the log's ``aggregates`` and cleaned ``users``.

    Training rows are the log's own impressions (``requests = log``, with ``LogAggregates(log, posts)``);
    serving rows are candidates at request time (``position = 1``), with the aggregates a feature store
    materialized or ``LogAggregates`` of the log so far. Label columns present in ``requests`` are carried
    along. ``followers`` (each row's author's follower count at its time) may come from a feature store that
    counted them already; otherwise they are counted from ``edges``.

    The columns are computed as arrays and assembled into one frame at the end: a feed request computes this
    table for a few hundred candidates within its latency budget, so per-column pandas overhead matters.
    """
    require_columns("requests", requests, REQUEST_COLUMNS)
    require_columns("users", users, ["user_id", "account_type", "age", "country", "signup_date"])
    require_columns("edges", edges, ["user_id", "target_id", "edge_type", "created_at"])
    require("aggregates", type(aggregates).__name__,
            hasattr(aggregates, "aggregates") and hasattr(aggregates, "post_static"),
            "an AggregateSource (features.LogAggregates, or a feature store's view)")
    require_known("requests.post_id", requests["post_id"], aggregates.post_static.index,
                  "the id of a post the aggregates know (a post in posts)")
    pit = {name: column.to_numpy() for name, column in aggregates.aggregates(requests).items()}
    post = aggregates.post_static.reindex(requests["post_id"])
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
        followers = followers_at(follower_sums(edges), author_id, requests["timestamp"])
    else:
        require("followers", f"{len(followers)} values", len(followers) == len(requests),
                f"one count per request row ({len(requests)})")
    columns["author_followers"] = np.asarray(followers, dtype=float)

    base = ENGAGEMENT_PRIOR
    columns["post_impressions"] = pit["post_impressions"]
    columns["post_engagement_rate"] = smoothed_rate(pit["post_engagement"], pit["post_impressions"], base)
    for reaction, prior in REACTION_PRIORS.items():
        columns[f"post_{reaction}_rate"] = smoothed_rate(pit[f"post_{reaction}"], pit["post_impressions"], prior)
    columns["author_engagement_rate"] = smoothed_rate(pit["author_engagement"], pit["author_impressions"], base)
    columns["user_impressions"] = pit["user_impressions"]
    user_rates = {r: smoothed_rate(pit[f"user_{r}"], pit["user_impressions"], REACTION_PRIORS[r])
                  for r in ("click", "like")}
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

