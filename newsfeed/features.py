"""Features for ranking, computed point-in-time correct: a feature of an impression at time t uses only events
logged before t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from newsfeed.metrics import engagement_score


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
    return (counts["engagement_so_far"] + prior_rate * prior_impressions) / (
        counts["impressions_so_far"] + prior_impressions)
