"""Creators' reach: how a feed spreads its impressions over the accounts that post, against their true quality.

A ranker that maximizes engagement concentrates exposure: authors whose posts earn more are shown more, and
earn more again. Creators feel it as reach, and a platform whose small creators get none loses them. The world
knows each creator's true quality (the mean of their posts' hidden quality), so inequality can be read against
merit, not only counted:

- ``creators``: each account that posts, with its posts and its true quality;
- ``reach``: a feed's impressions per creator, as inequality (Gini, the top 1%'s share, the creators reached)
  and as how exposure follows quality (rank correlation, the share of impressions on the better half);
- ``boost_under_exposed``: a re-ranking that adds a bonus to the posts of creators the log has shown little;
- ``reach_frontier``: a ranker served with each bonus weight: true engagement against the inequality it buys,
  kept beside the models like the book's other studies of rollouts;
- ``topic_diversity``: the other side of exposure, what each user is shown: how many topics, and how evenly,
  the filter-bubble question of a feed that learns from its own logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from newsfeed import experiments, metrics
from newsfeed.cache import kept_json, rows_digest
from newsfeed.validation import is_number, require, require_columns, require_int
from newsfeed.world import Policy, World, fingerprint


def creators(world: World) -> pd.DataFrame:
    """Each account with at least one post (indexed by ``author_id``): its ``posts`` and its true
    ``quality``, the mean hidden quality of its posts."""
    quality = pd.Series(world.truth.post_quality, index=world.posts["post_id"].to_numpy())
    by_author = quality.groupby(world.posts["author_id"].to_numpy())
    return pd.DataFrame({"posts": by_author.size(), "quality": by_author.mean()}).rename_axis("author_id")


def impressions_per_creator(impressions: pd.DataFrame, world: World) -> pd.Series:
    """How many of ``impressions`` each creator's posts received (0 for a creator never shown)."""
    require_columns("impressions", impressions, ["post_id"])
    authors = world.posts["author_id"].to_numpy()[impressions["post_id"].to_numpy()]
    counts = pd.Series(authors).value_counts()
    return counts.reindex(creators(world).index, fill_value=0).rename("impressions")


def reach(impressions: pd.DataFrame, world: World) -> dict[str, float]:
    """Exposure across creators in a feed's ``impressions``: its Gini and the top 1%'s share of impressions,
    the share of creators shown at all, the rank (Spearman) correlation of a creator's impressions with
    their true quality, and the share of impressions on the creators of above-median quality."""
    counts = impressions_per_creator(impressions, world)
    require("impressions", f"{len(impressions)} rows", counts.sum() > 0, "at least one impression")
    quality = creators(world)["quality"]
    better = quality > quality.median()
    return {"gini": metrics.gini(counts.to_numpy()),
            "top 1% share": metrics.top_share(counts.to_numpy(), 0.01),
            "creators reached": float((counts > 0).mean()),
            "quality correlation": float(counts.rank().corr(quality.rank())),
            "impressions on the better half": float(counts[better].sum() / counts.sum())}


def boost_under_exposed(policy: Policy, world: World, before: pd.DataFrame, weight: float) -> Policy:
    """``policy`` with a bonus for the posts of little-shown creators: ``weight`` (in the policy's own score
    units) times the share of creators the log ``before`` showed more than this post's author, so the least
    shown creator's posts gain ``weight`` and the most shown creator's nothing. Static within a rollout (the
    exposure as of the log), as a team's daily-refreshed reach table would be."""
    require("policy", policy, callable(policy), "a callable that scores candidate rows")
    require("weight", weight, is_number(weight) and weight >= 0, "a number >= 0 (0 leaves the policy as is)")
    shown = impressions_per_creator(before, world)
    less_shown = 1.0 - shown.rank(method="average", pct=True)  # 0 for the most shown, near 1 for the least
    bonus = np.zeros(world.n_accounts)
    bonus[less_shown.index.to_numpy()] = weight * less_shown.to_numpy()
    authors = world.posts["author_id"].to_numpy()

    def score(candidates: pd.DataFrame) -> np.ndarray:
        base = np.asarray(policy(candidates), dtype=float)
        return base + bonus[authors[candidates["post_id"].to_numpy()]]

    return score


def served_reach(world: World, policy: Policy, sessions: pd.DataFrame, history: pd.DataFrame,
                 seed: int = 0) -> dict[str, float]:
    """``reach`` of the feeds ``policy`` serves to ``sessions`` (after the logged ``history``), with their true
    expected engagement per session."""
    served = world.rollout(policy, sessions, seed=seed, earlier_impressions=history)
    engagement = metrics.engagement_score(served.probabilities, prefix="p_").sum() / len(sessions)
    return {"engagement per session": float(engagement), **reach(served.impressions, world)}


def reach_frontier(world: World, policy: Policy, weights: Iterable[float], sessions: pd.DataFrame,
                   history: pd.DataFrame, seed: int = 0, folder: str | Path | None = None,
                   identity: bytes = b"") -> pd.DataFrame:
    """``served_reach`` of ``policy`` boosted (``boost_under_exposed``, exposure as of ``history``) with each of
    ``weights``: a row per weight, the frontier of engagement against creators' reach. With ``folder``, kept
    there; ``identity`` must say what makes ``policy`` (a cache cannot see inside it)."""
    weights = [float(weight) for weight in weights]
    require("weights", weights, len(weights) > 0 and all(w >= 0 for w in weights), "one or more numbers >= 0")
    require_int("seed", seed, lo=0)

    def run() -> list[dict[str, float]]:
        return [{"weight": weight, **served_reach(world, boost_under_exposed(policy, world, history, weight),
                                                  sessions, history, seed)} for weight in weights]

    if folder is None:
        return pd.DataFrame(run())
    from newsfeed.models.shipped import _source_files  # the features and models a served model runs

    key = [fingerprint.output_digest(world).encode(), rows_digest(sessions, history), identity,
           repr((weights, seed)).encode()]
    return pd.DataFrame(kept_json(folder, "reach", key, [*_source_files(), *experiments.study_sources(__file__)],
                                  run))


def topic_diversity(impressions: pd.DataFrame, world: World, reaction: str | None = None) -> dict[str, float]:
    """How varied each user's feed is, by the posts' true topics, averaged over the users shown anything: the
    entropy of their topics in bits (0 for one topic; the log2 of the number of topics for all equally) and
    the number of distinct topics. With ``reaction`` (``"like"``, ...), over the impressions that drew it:
    how varied what users engage with is."""
    require_columns("impressions", impressions, ["user_id", "post_id"])
    rows = impressions
    if reaction is not None:
        require_columns("impressions", impressions, [reaction])
        rows = impressions[impressions[reaction].to_numpy() > 0]
    require("impressions", f"{len(rows)} rows", len(rows) > 0, "at least one impression (with the reaction)")
    topic = world.truth.post_topic[rows["post_id"].to_numpy()]
    counts = pd.crosstab(rows["user_id"].to_numpy(), topic).to_numpy(dtype=float)
    shares = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(shares > 0, shares * np.log2(shares), 0.0), axis=1)
    return {"topic entropy (bits)": float(entropy.mean()), "topics per user": float((counts > 0).sum(axis=1).mean()),
            "users": float(len(counts))}

