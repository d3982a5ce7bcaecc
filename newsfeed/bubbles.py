"""Filter bubbles: a ranker that learns from the feeds it served, retrained on them, round after round.

A ranker learns what a user likes from what they did with the posts it showed them, and it shows them what it
believes they like. Nothing in that loop shows a user a topic the ranker has not yet seen them enjoy, so its
beliefs can only narrow. Whether they do, and how far, is a measurement the world can make: each round trains
a ranker on the log so far, serves a week, appends that week to the log and trains again; the true topics of
what each user was shown and what they engaged with are read from the world, round by round.

- ``TopicAffinity``: the ranker that learns, each user's engagement per impression by topic (smoothed toward
  the topic's rate over all users), times the post's freshness;
- ``diversified``: a policy re-ranked by chapter 6's greedy rules (``serving.rerank``) in every session;
- ``interest_coverage``: how much of each user's true interests their feed showed them;
- ``feedback_rounds``: the rounds for each way of serving (as it learned, exploring, diversified), with the
  oracle of the engagement score served on the same weeks as the reference of what people truly like.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from newsfeed import experiments, metrics, policies
from newsfeed.cache import kept_json
from newsfeed.exposure import topic_diversity
from newsfeed.serving.rerank import RerankConfig, rerank
from newsfeed.validation import require, require_columns, require_float, require_int
from newsfeed.world import Policy, World, fingerprint

#: Impressions' worth of weight the topic's rate over all users gets in a user's estimate.
PRIOR_WEIGHT = 5.0


@dataclass
class TopicAffinity:
    """Each user's expected engagement (chapter 2's score of the reactions) per impression of each labelled
    topic, learned from a log: ``(score_ut + k x prior_t) / (shown_ut + k)`` with ``k = PRIOR_WEIGHT``. With
    ``unseen="average"`` the prior is the topic's rate over all users, so a topic a user was never shown is
    believed as good for them as for the average user; with ``unseen="zero"`` it is 0, worth nothing until the
    user engages with it (what a model that only learns from its own impressions believes)."""

    rates: np.ndarray  # (n_people, n_topics)
    topics: pd.Index  # the labelled topics, in the order of the rates' columns

    @classmethod
    def fit(cls, log: pd.DataFrame, posts: pd.DataFrame, n_people: int, unseen: str = "average") -> TopicAffinity:
        """Learned from the impressions of ``log`` (with their reactions) of the posts of ``posts``."""
        require_columns("log", log, ["user_id", "post_id", *metrics.ENGAGEMENT_WEIGHTS])
        require_int("n_people", n_people, lo=1)
        require("unseen", unseen, unseen in ("average", "zero"), "'average' or 'zero'")
        topics = pd.Index(sorted(posts["topic"].unique()))
        topic = topics.get_indexer(posts["topic"].to_numpy()[log["post_id"].to_numpy()])
        score = metrics.engagement_score(log).to_numpy(dtype=float)
        users = log["user_id"].to_numpy()
        shown = np.zeros((n_people, len(topics)))
        earned = np.zeros((n_people, len(topics)))
        np.add.at(shown, (users, topic), 1.0)
        np.add.at(earned, (users, topic), score)
        prior = earned.sum(axis=0) / np.maximum(shown.sum(axis=0), 1.0) if unseen == "average" else 0.0
        return cls((earned + PRIOR_WEIGHT * prior) / (shown + PRIOR_WEIGHT), topics)

    def policy(self, posts: pd.DataFrame, half_life_hours: float = 24.0) -> Policy:
        """Scores for ``World.rollout``: the user's learned rate for the post's labelled topic, halved every
        ``half_life_hours`` of the post's age (fresh posts first, as the world's readers prefer)."""
        require_float("half_life_hours", half_life_hours, 0.0, open_lo=True)
        topic = self.topics.get_indexer(posts["topic"].to_numpy())

        def score(candidates: pd.DataFrame) -> np.ndarray:
            rate = self.rates[candidates["user_id"].to_numpy(), topic[candidates["post_id"].to_numpy()]]
            return rate * np.exp2(-candidates["post_age_hours"].to_numpy() / half_life_hours)

        return score


def diversified(policy: Policy, posts: pd.DataFrame, config: RerankConfig, limit: int = 20) -> Policy:
    """``policy`` re-ranked in each session by ``serving.rerank`` with ``config`` (each post already chosen
    from a topic or an author lowers the others'): the first ``limit`` posts in the re-ranked order, the rest
    below them in the policy's order. The labelled topic is what the rules see, as in serving."""
    require("policy", policy, callable(policy), "a callable that scores candidate rows")
    require_int("limit", limit, lo=1)
    topics = posts["topic"].to_numpy()

    def score(candidates: pd.DataFrame) -> np.ndarray:
        base = np.asarray(policy(candidates), dtype=float)
        if not len(base):
            return base
        frame = pd.DataFrame({"score": base, "p_hide": 0.0, "author_id": candidates["author_id"].to_numpy(),
                              "topic": topics[candidates["post_id"].to_numpy()],
                              "post_age_hours": candidates["post_age_hours"].to_numpy()})
        out = base - (base.max() - base.min() + 1.0)  # below every re-ranked post, in the policy's order
        for rows in candidates.groupby("session_id", sort=False).indices.values():
            chosen = rerank(frame.iloc[rows], limit, config).index.to_numpy()
            out[chosen] = base.max() + 1.0 + np.arange(len(chosen))[::-1]
        return out

    return score


ServingWay = Callable[[pd.DataFrame, World], Policy]


def _learned(unseen: str) -> ServingWay:
    return lambda log, world: TopicAffinity.fit(log, world.posts, world.n_people, unseen).policy(world.posts)


#: The ways of serving a ranker learned from the log so far that ``feedback_rounds`` compares by default: each
#: a function of the log and the world to a policy.
WAYS: dict[str, ServingWay] = {
    "unseen = average": _learned("average"),
    "unseen = 0": _learned("zero"),
    "unseen = 0, exploring 10%": lambda log, world: policies.epsilon_greedy(_learned("zero")(log, world), 0.1),
    "unseen = 0, diversified": lambda log, world: diversified(
        _learned("zero")(log, world), world.posts, RerankConfig(max_p_hide=1.0, topic_penalty=0.3)),
}


def _renumbered(log: pd.DataFrame, served: pd.DataFrame) -> pd.DataFrame:
    """``log`` with the ``served`` impressions after it, numbered on from its last impression id."""
    offset = int(log["impression_id"].max()) + 1 if len(log) else 0
    return pd.concat([log, served.assign(impression_id=served["impression_id"] + offset)], ignore_index=True)


def interest_coverage(impressions: pd.DataFrame, world: World) -> dict[str, float]:
    """How much of what each user truly likes their feed showed, averaged over the users shown anything: the
    share of their true interest (``truth.interests``, summing to 1 over topics) on the topics shown to them,
    and the share of their impressions on their own three favourite topics."""
    require_columns("impressions", impressions, ["user_id", "post_id"])
    users = impressions["user_id"].to_numpy()
    topic = world.truth.post_topic[impressions["post_id"].to_numpy()]
    shown = pd.crosstab(users, topic).reindex(columns=range(world.truth.interests.shape[1]), fill_value=0)
    interests = world.truth.interests[shown.index.to_numpy()]
    favourite = np.argsort(-interests, axis=1)[:, :3]
    counts = shown.to_numpy(dtype=float)
    on_favourites = np.take_along_axis(counts, favourite, axis=1).sum(axis=1) / counts.sum(axis=1)
    return {"interest covered": float((interests * (counts > 0)).sum(axis=1).mean()),
            "on favourite topics": float(on_favourites.mean())}


def _round_row(world: World, served: Any, sessions: pd.DataFrame) -> dict[str, float]:
    shown = topic_diversity(served.impressions, world)
    engagement = metrics.engagement_score(served.probabilities, prefix="p_").sum() / len(sessions)
    return {"engagement per session": float(engagement), "topic entropy (bits)": shown["topic entropy (bits)"],
            "topics per user": shown["topics per user"], **interest_coverage(served.impressions, world)}


def feedback_rounds(world: World, ways: Mapping[str, ServingWay] | None = None, rounds: int = 3,
                    start_day: int = 7, days_per_round: int = 7, seeds: Iterable[int] = (0,),
                    folder: str | Path | None = None) -> pd.DataFrame:
    """For each of ``ways`` (``WAYS`` by default): ``rounds`` rounds from ``start_day``, each training a
    ``TopicAffinity`` on the log so far (the world's own log before ``start_day``, then the weeks it served),
    serving ``days_per_round`` days with it, served that way, and appending them to its log. A row per (way,
    rollout seed of ``seeds``, round): true engagement per session, the topic diversity of what was shown and
    how much of each user's true interests it covered; and the oracle of the engagement score on the same days
    (``"oracle"``), what people would see were their interests known. With ``folder``, kept there and read
    back when the same code served the same rounds on the same world (the ways are known by their names)."""
    ways = dict(WAYS if ways is None else ways)
    require("ways", list(ways), len(ways) > 0 and all(callable(way) for way in ways.values()),
            "one or more named functions (log, world) -> policy")
    require_int("rounds", rounds, lo=1)
    require_int("days_per_round", days_per_round, lo=1)
    require_int("start_day", start_day, 1, world.config.n_days - rounds * days_per_round)
    seeds = [int(seed) for seed in seeds]
    require("seeds", seeds, len(seeds) > 0 and min(seeds) >= 0, "one or more rollout seeds (ints >= 0)")

    def run() -> list[dict[str, Any]]:
        rows = []
        oracle = policies.oracle_policy(world, lambda p: metrics.engagement_score(p, prefix="p_"))
        for (name, way), seed in itertools.product({"oracle": None, **ways}.items(), seeds):
            log = world.impressions[world.impressions["timestamp"]
                                    < world.config.start_time + pd.Timedelta(days=start_day)]
            for round_ in range(rounds):
                _, _, sessions = experiments.test_window(world, start_day + round_ * days_per_round,
                                                         days_per_round)
                policy = oracle if way is None else way(log, world)
                served = world.rollout(policy, sessions, seed=1000 * seed + round_, earlier_impressions=log)
                rows.append({"way": name, "seed": seed, "round": round_ + 1,
                             **_round_row(world, served, sessions)})
                log = _renumbered(log, served.impressions)
        return rows

    if folder is None:
        return pd.DataFrame(run())
    identity = [fingerprint.output_digest(world).encode(), repr((sorted(ways), rounds, start_day, days_per_round,
                                                                 seeds)).encode()]
    return pd.DataFrame(kept_json(folder, "bubbles", identity, experiments.study_sources(__file__), run))
