"""Data preparation for ranking: cleaning, point-in-time aggregates, the feature table, encoding, embeddings,
and the dataset with its time split.

The central rule: a feature of an impression at time t uses only events logged *before* t. The package, one
module per step of chapter 3:

- ``cleaning``: ``clean_users``, ``clean_impressions``, ``clean_posts`` (topics read from the text);
- ``aggregates``: ``AGGREGATES`` (the running sums, as data), ``LogAggregates``, the ``AggregateSource``
  protocol and ``PrecomputedAggregates`` (aggregates a feature store or a cluster computed);
- ``table``: ``feature_table``, one row of features per (user, post, time) request;
- ``encoding``: ``feature_pipeline`` (scikit-learn) and ``CompiledTransform`` (the same, as numpy);
- ``embeddings``: text vectors, interaction embeddings, nearest neighbours;
- ``dataset``: ``weekly_split``, ``build_dataset`` and the ``Dataset`` chapters 4–7 train on.
"""

from newsfeed.features.aggregates import (
    AFFINITY_DECAY_HOURS,
    AGGREGATES,
    AggregateSource,
    AggregateSpec,
    LogAggregates,
    PrecomputedAggregates,
    post_static,
    smoothed_rate,
)
from newsfeed.features.cleaning import (
    VALID_AGE,
    clean_impressions,
    clean_posts,
    clean_users,
    infer_topics,
    normalize_country,
    topic_classifier,
)
from newsfeed.features.dataset import (
    MODEL_NUMERIC_FEATURES,
    TEXT_FEATURES,
    Dataset,
    TimeSplit,
    build_dataset,
    weekly_split,
)
from newsfeed.features.embeddings import interaction_embeddings, nearest_neighbours, text_embedder, text_vectors
from newsfeed.features.encoding import CompiledTransform, feature_pipeline
from newsfeed.features.table import (
    CATEGORICAL_FEATURES,
    ENGAGEMENT_PRIOR,
    LABELS,
    LOG_FEATURES,
    NUMERIC_FEATURES,
    REACTION_PRIORS,
    REQUEST_COLUMNS,
    feature_table,
)

__all__ = ["AFFINITY_DECAY_HOURS", "AGGREGATES", "CATEGORICAL_FEATURES", "ENGAGEMENT_PRIOR", "LABELS", "LOG_FEATURES",
           "MODEL_NUMERIC_FEATURES", "NUMERIC_FEATURES", "REACTION_PRIORS", "REQUEST_COLUMNS", "TEXT_FEATURES",
           "VALID_AGE", "AggregateSource", "AggregateSpec", "CompiledTransform", "Dataset", "LogAggregates",
           "PrecomputedAggregates", "TimeSplit", "build_dataset", "clean_impressions", "clean_posts", "clean_users",
           "feature_pipeline", "feature_table", "infer_topics", "interaction_embeddings", "nearest_neighbours",
           "normalize_country", "post_static", "smoothed_rate", "text_embedder", "text_vectors", "topic_classifier",
           "weekly_split"]
