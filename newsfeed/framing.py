"""Framing the feed as an ML task: rank by an objective of the *true* reaction probabilities, and measure what
the resulting feed promotes.

Chapter 2 uses these to compare candidate objectives (clicks, dwell, likes, a weighted engagement score) before
any model exists; later chapters use the same oracle as the upper bound a trained model is measured against,
and the same report to compare feeds served online.

Use::

    from functools import partial
    from newsfeed.framing import feed_report, oracle_policy
    from newsfeed.metrics import engagement_score

    policy = oracle_policy(world, partial(engagement_score, prefix="p_"))
    feed_report(world, world.rollout(policy, sessions, seed=0, history=earlier_impressions))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from newsfeed.metrics import engagement_score
from newsfeed.world import REACTIONS, Policy, Rollout, World

#: The column of ``feed_report`` for each reaction (a count per session reads best in the plural).
REPORT_NAMES: dict[str, str] = {"click": "clicks", "like": "likes", "comment": "comments", "share": "shares",
                                "hide": "hides"}


def oracle_policy(world: World, objective: Callable[[pd.DataFrame], Any]) -> Policy:
    """A policy that ranks each session's candidates by ``objective`` of their true probabilities.

    ``objective`` receives the frame of ``World.probabilities`` for the candidate rows (columns ``p_click``
    ... ``p_hide`` and ``expected_dwell``) and returns one score per row. Probabilities are taken at position 1
    for every candidate: position bias scales all of a user's probabilities by the same factor, so the order
    is that of the probabilities *given that the user looks*. Only a simulator can serve this policy; for each session
    it is the best ranking any model of that objective could produce (greedy per session: it does not plan
    which posts to keep for the user's later sessions).
    """
    if not callable(objective):
        raise ValueError(f"objective={objective!r} is invalid: objective accepts a callable that maps the "
                         "frame of true probabilities to one score per row")

    def score(candidates: pd.DataFrame) -> np.ndarray:
        probabilities = world.probabilities(
            user_id=candidates["user_id"].to_numpy(), post_id=candidates["post_id"].to_numpy(), position=1,
            time=candidates["requested_at"].to_numpy(), device=candidates["device"].to_numpy())
        scores = np.asarray(objective(probabilities), dtype=float)
        if scores.shape != (len(candidates),):
            raise ValueError(f"objective returned {scores.shape} scores for {len(candidates)} candidates: "
                             "objective must return one score per row")
        return scores

    return score


def feed_report(world: World, rollout: Rollout, top_positions: int = 3, clickbait_threshold: float = 0.5,
                outcomes: str = "expected") -> pd.Series:
    """What a served feed promoted, per session that showed at least one post.

    Reactions (``clicks`` ... ``hides``), ``dwell_seconds`` and the weighted ``engagement`` are summed over a
    session's impressions and averaged over sessions. With ``outcomes="expected"`` they are the sums of the
    true probabilities (and expected dwell) of what was shown, free of the sampling noise of the outcomes;
    with ``outcomes="observed"`` they are the sampled reactions, as an A/B test would count them.

    Two columns read the ground truth, which no real company sees: ``clickbait_at_top``, the share of the
    top ``top_positions`` slots filled with posts whose latent clickbait-ness exceeds ``clickbait_threshold``,
    and ``quality_at_top``, the mean latent quality of those posts.
    """
    if not isinstance(top_positions, int | np.integer) or isinstance(top_positions, bool) or top_positions < 1:
        raise ValueError(f"top_positions={top_positions!r} is invalid: top_positions accepts an integer >= 1")
    if not isinstance(clickbait_threshold, int | float) or not 0.0 <= clickbait_threshold <= 1.0:
        raise ValueError(f"clickbait_threshold={clickbait_threshold!r} is invalid: clickbait_threshold "
                         "accepts a number from 0 to 1")
    if outcomes not in ("expected", "observed"):
        raise ValueError(f"outcomes={outcomes!r} is invalid: outcomes accepts 'expected' or 'observed'")
    impressions = rollout.impressions
    if impressions.empty:
        raise ValueError("rollout has no impressions: nothing was shown, so there is nothing to report")
    if outcomes == "expected":
        values = impressions[["impression_id"]].merge(rollout.probabilities, on="impression_id", how="left")
        reactions = values[[f"p_{r}" for r in REACTIONS]].set_axis(list(REACTIONS), axis=1)
        dwell = values["expected_dwell"]
    else:
        reactions = impressions[list(REACTIONS)].astype(float)
        dwell = impressions["dwell_seconds"]
    n_sessions = impressions["session_id"].nunique()
    per_session = {REPORT_NAMES[r]: float(reactions[r].sum()) / n_sessions for r in REACTIONS}
    per_session["dwell_seconds"] = float(dwell.sum()) / n_sessions
    per_session["engagement"] = float(engagement_score(reactions).sum()) / n_sessions
    top = impressions.loc[impressions["position"] <= top_positions, "post_id"].to_numpy()
    per_session["clickbait_at_top"] = float(np.mean(world.truth.post_clickbait[top] > clickbait_threshold))
    per_session["quality_at_top"] = float(np.mean(world.truth.post_quality[top]))
    per_session["sessions"] = float(n_sessions)
    return pd.Series(per_session, name=outcomes)
