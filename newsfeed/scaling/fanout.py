"""Fan-out: how a post reaches its readers' feeds. Push it into every follower's inbox when it is written
(fan-out on write), pull the followed accounts' recent posts when a feed is read (fan-out on read), or mix the
two by the author's audience: push for most authors, pull for the few with very many followers.

``fanout_costs`` counts, on a world's graph, posts and feed requests, what each strategy costs: inbox writes
per post, accounts read per feed request, and how long the last follower waits for a pushed post. It is
arithmetic on real counts, not a simulation of a particular database.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from newsfeed.features.aggregates import followers_as_of
from newsfeed.validation import require, require_float


def audience(edges: pd.DataFrame, now: pd.Timestamp) -> pd.Series:
    """Followers (friends and followers) of each account as of ``now``: the inboxes a push writes to."""
    return followers_as_of(edges, now)


def fanout_costs(edges: pd.DataFrame, posts: pd.DataFrame, requests: pd.DataFrame, thresholds: list[float],
                 now: pd.Timestamp, writes_per_second: float = 10_000.0) -> pd.DataFrame:
    """For each push threshold (authors with at most that many followers are pushed, the rest pulled), per
    post written and per feed request: inbox writes, accounts pulled at read time, and the seconds until a
    pushed post reaches its last follower (at ``writes_per_second`` inbox writes per second for one post).

    ``posts`` are the posts written (``author_id``), ``requests`` the feed requests (``user_id``); ``inf`` is
    pure push, 0 pure pull.
    """
    require("thresholds", thresholds, len(thresholds) > 0 and all(t >= 0 for t in thresholds),
            "one or more numbers >= 0 (inf: push everyone)")
    require_float("writes_per_second", writes_per_second, 0.0, open_lo=True)
    followers = audience(edges, now)
    known = edges[edges["created_at"] < now]
    post_audience = followers.reindex(posts["author_id"]).fillna(0).to_numpy()
    # For each reader, the follower count of each account they follow: which of them a pull must read.
    followed = known.assign(followers=followers.reindex(known["target_id"]).fillna(0).to_numpy())
    per_reader = followed.groupby("user_id")["followers"].apply(np.sort)
    reads = per_reader.reindex(requests["user_id"])
    rows = []
    for threshold in thresholds:
        pushed = post_audience <= threshold
        pulled = [0 if not isinstance(f, np.ndarray) else len(f) - np.searchsorted(f, threshold, side="right")
                  for f in reads.tolist()]
        rows.append({"push threshold": threshold,
                     "inbox writes per post": float(np.where(pushed, post_audience, 0).mean()),
                     "accounts pulled per request": float(np.mean(pulled)),
                     "worst push delay (s)": float(np.where(pushed, post_audience, 0).max() / writes_per_second)})
    return pd.DataFrame(rows).set_index("push threshold")
