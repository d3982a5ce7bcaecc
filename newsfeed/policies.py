"""Every policy that decides what a user sees, in one place.

A policy is a function from one batch of candidate rows (many sessions at once; see ``World.rollout``) to a
score per row; the world shows each session's candidates in descending score order. The book serves these:

- ``legacy_ranker``: the ranker that logged the world's data (fresh, popular, friends first, plus noise). It is
  defined in the simulator, whose logs it generated, and re-exported here;
- ``oracle_policy``: ranks by an objective of the *true* probabilities, the upper bound any model is measured
  against (chapters 2, 5 and 7);
- ``ranking_policy``: a trained ranker serving from point-in-time features (chapters 5 and 7);
- ``split_policy``: two policies side by side, one per arm of an A/B test (chapter 5);
- ``epsilon_greedy``: any policy with exploration (chapter 7);
- ``shuffled_top``: any policy with a randomized share of sessions whose top slots are shuffled, so that logs
  carry a known propensity for every shown position (``randomized_sessions`` says which sessions);
- ``reorder_top``: one policy's first screen in another's order (chapter 9's candidates for a new ranker).

Use::

    from functools import partial
    from newsfeed.metrics import engagement_score
    from newsfeed.policies import legacy_ranker, oracle_policy

    oracle = oracle_policy(world, partial(engagement_score, prefix="p_"))
    world.rollout(oracle, sessions, seed=0, earlier_impressions=log_so_far)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from newsfeed.features import AggregateSource, Dataset, feature_table
from newsfeed.features.aggregates import follower_sums, followers_at
from newsfeed.models import Ranker, serving_view
from newsfeed.validation import is_number, require
from newsfeed.world import Policy, World, legacy_ranker

__all__ = ["Policy", "epsilon_greedy", "legacy_ranker", "oracle_policy", "randomized_sessions", "ranking_policy",
           "reorder_top", "request_features", "shuffled_top", "split_policy"]


def oracle_policy(world: World, objective: Callable[[pd.DataFrame], Any]) -> Policy:
    """A policy that ranks each session's candidates by ``objective`` of their true probabilities.

    ``objective`` receives the frame of ``World.probabilities`` for the candidate rows (columns ``p_click``
    ... ``p_hide`` and ``expected_dwell``) and returns one score per row. Probabilities are taken at position 1
    for every candidate: position bias scales all of a user's probabilities by the same factor, so the order
    is that of the probabilities *given that the user looks*. Only a simulator can serve this policy; for each session
    it is the best ranking any model of that objective could produce (greedy per session: it does not plan
    which posts to keep for the user's later sessions).
    """
    require("objective", objective, callable(objective),
            "a callable that maps the frame of true probabilities to one score per row")

    def score(candidates: pd.DataFrame) -> np.ndarray:
        probabilities = world.probabilities(
            user_id=candidates["user_id"].to_numpy(), post_id=candidates["post_id"].to_numpy(), position=1,
            time=candidates["requested_at"].to_numpy(), device=candidates["device"].to_numpy())
        scores = np.asarray(objective(probabilities), dtype=float)
        require("objective", f"a callable returning {scores.shape} scores for {len(candidates)} candidates",
                scores.shape == (len(candidates),), "a callable returning one score per row")
        return scores

    return score


def request_features(aggregates: AggregateSource, edges: pd.DataFrame,
                     dataset: Dataset) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A function from candidate rows (as ``World.rollout`` passes them, or logged impressions with
    ``requested_at``) to their feature table at request time, every candidate at position 1: what
    ``ranking_policy`` scores, and what an off-policy evaluation scores logged rows with."""
    followed = follower_sums(edges)  # once, not per batch
    authors = aggregates.post_static["author_id"]

    def table(candidates: pd.DataFrame) -> pd.DataFrame:
        requests = serving_view(candidates.rename(columns={"requested_at": "timestamp"}))
        followers = followers_at(followed, authors.reindex(requests["post_id"]).to_numpy(), requests["timestamp"])
        return feature_table(requests, dataset.users, edges, aggregates, followers).join(dataset.text, on="post_id")

    return table


def ranking_policy(ranker: Ranker, aggregates: AggregateSource, edges: pd.DataFrame, dataset: Dataset) -> Policy:
    """A serving policy for ``World.rollout``: features for each candidate at request time from ``aggregates``
    (``dataset.aggregates`` of the log as of the last feature refresh), then the ranker's score as served.

    ``edges`` is the follow graph; ``dataset`` supplies the cleaned users and the text embeddings (the log and
    the posts, with topics read from their text, come in through ``aggregates``). Every candidate is scored
    at position 1, as ``Ranker.score`` serves.
    """
    table = request_features(aggregates, edges, dataset)

    def score(candidates: pd.DataFrame) -> np.ndarray:
        return ranker.score(table(candidates))

    return score


def split_policy(control: Policy, treatment: Policy, treated_users: npt.ArrayLike) -> Policy:
    """A policy that scores each candidate row with ``treatment`` if its user is treated, else ``control``.

    Each policy sees only its own arm's rows, in their original order and with a fresh index, so it behaves as
    it would serving alone (a policy that draws random numbers draws them for its own rows only). Scores of the
    two policies are never compared: every session belongs to one user, so to one arm.
    """
    treated = np.unique(np.asarray(treated_users, dtype=np.int64))

    def score(candidates: pd.DataFrame) -> np.ndarray:
        is_treated = np.isin(candidates["user_id"].to_numpy(dtype=np.int64), treated)
        scores = np.empty(len(candidates), dtype=float)
        for name, policy, rows in (("control", control, ~is_treated), ("treatment", treatment, is_treated)):
            if not rows.any():
                continue
            part = np.asarray(policy(candidates.loc[rows].reset_index(drop=True)), dtype=float)
            require(name, f"{part.shape} scores for {int(rows.sum())} candidates",
                    part.shape == (int(rows.sum()),), "a policy returning one score per candidate row")
            scores[rows] = part
        return scores

    return score


def epsilon_greedy(policy: Policy, epsilon: float, seed: int = 0,
                   explore_among: Callable[[pd.DataFrame], np.ndarray] | None = None) -> Policy:
    """``policy`` with exploration: each session's feed is filled slot by slot from the top, each slot taking
    a uniformly random remaining candidate with probability ``epsilon`` and the policy's best remaining one
    otherwise. The returned scores encode that order (higher is shown first).

    ``explore_among`` aims the exploration: it maps the candidate rows to a boolean per row, and random picks
    are drawn only from the rows it marks (a slot explores only while one of them remains). Exploration buys
    labels for posts the policy would never show, at the cost of some engagement now (chapter 7 measures
    both). A production system also logs each shown post's probability of being shown, so that later
    analyses can reweight the explored slots.
    """
    require("epsilon", epsilon, is_number(epsilon) and 0.0 <= epsilon <= 1.0, "a number from 0 to 1")
    rng = np.random.default_rng(seed)

    def score(candidates: pd.DataFrame) -> np.ndarray:
        greedy = np.asarray(policy(candidates), dtype=float)
        allowed = (np.ones(len(candidates), dtype=bool) if explore_among is None
                   else np.asarray(explore_among(candidates), dtype=bool))
        require("explore_among", f"{allowed.shape} values for {len(candidates)} candidates",
                allowed.shape == (len(candidates),), "a function returning one boolean per candidate row")
        order = np.empty(len(candidates))
        for rows in candidates.groupby("session_id", sort=False).indices.values():
            queue = list(rows[np.argsort(-greedy[rows], kind="stable")])
            for slot in range(len(rows)):
                pick = 0
                if rng.random() < epsilon:
                    eligible = [i for i, row in enumerate(queue) if allowed[row]]
                    pick = eligible[int(rng.integers(len(eligible)))] if eligible else 0
                order[queue.pop(pick)] = -slot
        return order

    return score


def randomized_sessions(session_ids: npt.ArrayLike, share: float, seed: int = 0) -> np.ndarray:
    """Which sessions ``shuffled_top`` randomizes: a ``share`` of them, chosen by a hash of each id and ``seed``,
    so the same session is chosen wherever it is asked (in a batch, in the log afterwards)."""
    require("share", share, is_number(share) and 0.0 <= share <= 1.0, "a number from 0 to 1")
    ids = np.asarray(session_ids, dtype=np.int64).astype(np.uint64)
    salt = np.uint64(np.random.default_rng(seed).integers(2**63))  # (hash_array ignores hash_key for integers)
    hashed = pd.util.hash_array(ids ^ salt, categorize=False)
    return (hashed % 1_000_000) < round(share * 1_000_000)


def shuffled_top(policy: Policy, share: float, top: int = 5, seed: int = 0,
                 record: list[pd.DataFrame] | None = None) -> Policy:
    """``policy`` with a randomized share of sessions, the logs a team can learn position bias and
    evaluate new policies from. In the sessions ``randomized_sessions(ids, share, seed)`` marks, the
    policy's ``top`` best candidates fill the first ``top`` positions in a uniformly random order,
    so each of them lands at each of those positions with probability 1/``top`` (its propensity);
    every other session, and every later position, is ranked as ``policy`` ranks it. The
    randomization costs engagement: the policy's best post is first in only 1/``top`` of the
    randomized sessions.

    ``record``, a list, receives a frame per batch of each session's ``top`` best candidates
    (``session_id``, ``post_id``) and the rank ``policy`` gave them (``intended``), randomized or
    not: what a production log keeps beside each impression, from which
    ``offpolicy.evaluation.first_screen`` gives each shown post's probability of its position."""
    require("policy", policy, callable(policy), "a callable that scores candidate rows")
    randomized_sessions(np.zeros(0), share, seed)  # checks share
    require("top", top, isinstance(top, int) and top >= 2, "an integer >= 2")
    require("record", record, record is None or isinstance(record, list), "None or a list")
    rng = np.random.default_rng(seed)

    def score(candidates: pd.DataFrame) -> np.ndarray:
        scores = np.asarray(policy(candidates), dtype=float).copy()
        sessions = candidates["session_id"].to_numpy()
        if record is not None:
            rank = pd.Series(-scores).groupby(sessions).rank(method="first").to_numpy()
            best = rank <= top
            posts = candidates["post_id"].to_numpy()[best]
            record.append(pd.DataFrame({"session_id": sessions[best], "post_id": posts,
                                        "intended": rank[best].astype(np.int64)}))
        marked = randomized_sessions(sessions, share, seed)
        where = np.flatnonzero(marked)  # the marked rows' positions in candidates
        for rows in candidates[marked].groupby("session_id", sort=False).indices.values():
            rows = where[rows]  # positions in candidates, not in the marked subset
            best = rows[np.argsort(-scores[rows], kind="stable")[:top]]
            # Above every other candidate of the session, in a random order among themselves.
            scores[best] = scores[rows].max() + 1.0 + rng.permutation(len(best))
        return scores

    return score


def reorder_top(policy: Policy, by: Policy, top: int = 5) -> Policy:
    """``policy``'s ``top`` best candidates of each session, shown first in the order ``by`` scores them (``by``
    scores only those rows); later positions as ``policy`` ranks them. A new ranker for the first screen that
    keeps the old one's candidates: the policies whose value chapter 9 estimates from the old one's logs."""
    require("policy", policy, callable(policy), "a callable that scores candidate rows")
    require("by", by, callable(by), "a callable that scores candidate rows")
    require("top", top, isinstance(top, int) and top >= 1, "an integer >= 1")

    def score(candidates: pd.DataFrame) -> np.ndarray:
        scores = np.asarray(policy(candidates), dtype=float).copy()
        sessions = candidates["session_id"].to_numpy()
        chosen = np.flatnonzero(pd.Series(-scores).groupby(sessions).rank(method="first").to_numpy() <= top)
        order = np.asarray(by(candidates.iloc[chosen].reset_index(drop=True)), dtype=float)
        require("by", f"a callable returning {order.shape} scores for {len(chosen)} candidates",
                order.shape == (len(chosen),), "a callable returning one score per row")
        within = pd.Series(-order).groupby(sessions[chosen]).rank(method="first").to_numpy()
        scores[chosen] = scores.max() + 1.0 + top - within
        return scores

    return score
