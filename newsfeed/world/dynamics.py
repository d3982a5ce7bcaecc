"""What users carry from one session to the next, for the experiments chapter: shares that travel on the friend
graph, a product change's novelty that fades, and a return rate that follows how satisfying recent feeds were.

``Dynamics`` switches them on for one ``World.rollout``; every mechanism is off by default, and a rollout
without ``Dynamics`` is the world every other chapter reads (the worlds the models train on are pinned,
``world.fingerprint``). ``Memory`` is the state a rollout keeps while they are on:

- **Shares travel.** A post a user shares enters each friend's candidates for the candidate window (source
  ``"shared"``), and reading a post a friend shared carries that friend's closeness (times
  ``shared_closeness``) where the author is a stranger. A ranker that makes people share reaches users it
  does not serve: the interference an A/B test randomized by user cannot see.
- **A product change** reaches the ``treated`` users: ``share_prompt`` multiplies the odds that they share (a
  one-tap share button), and ``novelty`` adds log-odds of a click and a like that halve every
  ``novelty_half_life_days`` from each user's first session with it (a new look draws curious clicks while it
  is new: the response to change itself, as the experimentation literature measures it). The first week of
  such a launch looks better than its later weeks.
- **Regret.** With any mechanism on, a click can be regretted (with chance ``sqrt(clickbait) x (1 - quality)``;
  the reader bounces back within seconds, which the log shows only as a short dwell).
- **Return rate.** Each session's satisfaction adds ``UTILITY`` over what it showed; a user's satisfaction is
  a moving average over their sessions, and each of their sessions in ``World.sessions`` (the visits they
  would make) happens with a probability that rises with it: ``base_return`` at the reference satisfaction.
  A ranker that pleases today and disappoints over weeks loses visits, which a first-week test does not see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from newsfeed.validation import require, require_float, require_int

if TYPE_CHECKING:
    from newsfeed.world.core import World

#: What each outcome of an impression adds to its session's satisfaction (a regretted click is also a click).
UTILITY: Mapping[str, float] = {"click": 0.3, "like": 1.0, "comment": 1.0, "share": 1.0, "hide": -3.0,
                                "regret": -1.5}


@dataclass(frozen=True)
class Dynamics:
    """The mechanisms of ``Memory`` a rollout switches on; each is off by default."""

    shares_travel: bool = False
    shared_closeness: float = 1.0
    treated: frozenset[int] = frozenset()
    share_prompt: float = 1.0
    novelty: float = 0.0
    novelty_half_life_days: float = 4.0
    return_rate: bool = False
    base_return: float = 0.8
    return_slope: float = 1.0
    reference_satisfaction: float = 1.8  # about what the oracle of the engagement score gives a session
    satisfaction_weight: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("shares_travel", "return_rate"):
            require(name, getattr(self, name), isinstance(getattr(self, name), bool), "True or False")
        require_float("shared_closeness", self.shared_closeness, 0.0, 1.0)
        require_float("share_prompt", self.share_prompt, 0.01, 100.0)
        require("treated", type(self.treated).__name__, isinstance(self.treated, frozenset)
                and all(isinstance(user, int) and user >= 0 for user in self.treated),
                "a frozenset of person ids (ints >= 0)")
        require_float("novelty", self.novelty, 0.0, 5.0)
        require_float("novelty_half_life_days", self.novelty_half_life_days, 0.01, 365.0)
        require_float("base_return", self.base_return, 0.01, 0.99)
        require_float("return_slope", self.return_slope, 0.0, 10.0)
        require_float("reference_satisfaction", self.reference_satisfaction, -100.0, 100.0)
        require_float("satisfaction_weight", self.satisfaction_weight, 0.01, 1.0)
        require_int("seed", self.seed, 0, 2**32 - 1)

    @property
    def any(self) -> bool:
        return self.shares_travel or self.return_rate or bool(self.treated)

    def __repr__(self) -> str:  # the treated users by count: a test treats thousands
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "treated"}
        return f"Dynamics({', '.join(f'{k}={v!r}' for k, v in fields.items())}, treated=<{len(self.treated)} users>)"


@dataclass
class Memory:
    """The state ``Dynamics`` keeps through one rollout: who is treated and since when, satisfaction, and the
    shared posts."""

    dynamics: Dynamics
    treated: np.ndarray  # (n_people,) bool
    first_seen: np.ndarray  # (n_people,) hour of each treated user's first session with the change (inf: none)
    satisfaction: np.ndarray  # (n_people,) moving average of session satisfaction
    shared: list[list[tuple[int, int, float]]]  # per user: (post, sharer, hour shared)
    friends: list[np.ndarray]
    rng: np.random.Generator
    visits: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def start(cls, world: World, dynamics: Dynamics) -> Memory:
        """The state at a rollout's start: every user's satisfaction at the reference, nothing shared yet."""
        n = world.n_people
        treated = np.zeros(n, dtype=bool)
        ids = np.fromiter(dynamics.treated, dtype=np.int64, count=len(dynamics.treated))
        require("dynamics.treated", sorted(ids[ids >= n].tolist())[:3], bool(np.all(ids < n)),
                f"ids of people of this world (0 to {n - 1})")
        treated[ids] = True
        edges = world.edges[world.edges["edge_type"] == "friend"]
        order = np.argsort(edges["user_id"].to_numpy(), kind="stable")
        users, targets = edges["user_id"].to_numpy()[order], edges["target_id"].to_numpy()[order]
        bounds = np.searchsorted(users, np.arange(n + 1))
        return cls(dynamics=dynamics, treated=treated, first_seen=np.full(n, np.inf),
                   satisfaction=np.full(n, dynamics.reference_satisfaction), shared=[[] for _ in range(n)],
                   friends=[targets[bounds[u]:bounds[u + 1]] for u in range(n)],
                   rng=np.random.default_rng(dynamics.seed))

    # ---- return rate -----------------------------------------------------------------------------------
    def visit(self, session_ids: np.ndarray, users: np.ndarray) -> np.ndarray:
        """Which of these sessions happen (all of them when the return rate is off)."""
        if not self.dynamics.return_rate:
            return np.ones(len(users), dtype=bool)
        d = self.dynamics
        logit = np.log(d.base_return / (1 - d.base_return)) + d.return_slope * (
            self.satisfaction[users] - d.reference_satisfaction)
        happens = self.rng.random(len(users)) < 1.0 / (1.0 + np.exp(-logit))
        self.visits.append(session_ids[happens])
        return happens

    # ---- shares ----------------------------------------------------------------------------------------
    def shared_with(self, user: int, since: float, until: float) -> tuple[np.ndarray, np.ndarray]:
        """The posts friends shared with ``user`` between the hours ``since`` and ``until``, and who shared."""
        inbox = [(post, sharer) for post, sharer, hour in self.shared[user] if since <= hour < until]
        if not inbox:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        posts, sharers = np.asarray(inbox, dtype=np.int64).T
        return posts, sharers

    # ---- the product change ---------------------------------------------------------------------------
    def logit_shift(self, users: np.ndarray, hours: np.ndarray) -> dict[str, np.ndarray]:
        """Extra log-odds of each row's reactions for the treated users: of a share, the prompt's; of a
        click and a like, ``novelty``, halving every ``novelty_half_life_days`` since the user's first
        session with the change."""
        d, treated = self.dynamics, self.treated[users]
        if not treated.any():
            return {}
        np.minimum.at(self.first_seen, users[treated], hours[treated])
        shift = {}
        if d.share_prompt != 1.0:
            shift["share"] = np.where(treated, np.log(d.share_prompt), 0.0)
        if d.novelty > 0:
            since = np.where(treated, hours - self.first_seen[users], np.inf)
            shift["click"] = shift["like"] = d.novelty * np.exp2(-since / (24.0 * d.novelty_half_life_days))
        return shift

    # ---- after a batch is shown ------------------------------------------------------------------------
    def regrets(self, clicked: np.ndarray, quality: np.ndarray, clickbait: np.ndarray) -> np.ndarray:
        """Which clicks the reader regrets (bounces back from)."""
        chance = np.sqrt(clickbait) * (1.0 - quality)
        return clicked.astype(bool) & (self.rng.random(len(clicked)) < chance)

    def remember(self, sessions: np.ndarray, users: np.ndarray, posts: np.ndarray, hours: np.ndarray,
                 outcomes: Mapping[str, np.ndarray]) -> None:
        """Update satisfaction and the friends' shared posts with one batch's impressions."""
        d = self.dynamics
        if d.return_rate:
            utility = sum(weight * np.asarray(outcomes[name], dtype=float) for name, weight in UTILITY.items())
            per_session = pd.Series(utility).groupby(sessions).sum()
            first_user = pd.Series(users).groupby(sessions).first()
            who = first_user.loc[per_session.index].to_numpy()
            self.satisfaction[who] += d.satisfaction_weight * (per_session.to_numpy() - self.satisfaction[who])
        if d.shares_travel:
            for i in np.flatnonzero(np.asarray(outcomes["share"]) == 1).tolist():
                sharer, post, hour = int(users[i]), int(posts[i]), float(hours[i])
                for friend in self.friends[sharer].tolist():
                    self.shared[friend].append((post, sharer, hour))
