"""The world's configuration: every knob of the simulation, validated on creation, and the named scales."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from newsfeed import vocabulary as vocab
from newsfeed.validation import require, require_float, require_int

REACTIONS: tuple[str, ...] = ("click", "like", "comment", "share", "hide")
SCALES: dict[str, dict[str, float]] = {
    "small": {"n_people": 400, "n_pages": 16},
    "default": {"n_people": 2000, "n_pages": 60},
    # The large world has the hard case of a real network: a few people connected to thousands of accounts.
    "large": {"n_people": 20000, "n_pages": 600, "hub_share": 0.001},
}
#: Every device a session can come from: the usual ones and the one the drift introduces.
DEVICES: tuple[str, ...] = (*vocab.DEVICES, vocab.DRIFT_DEVICE)
_HOUR = 3600.0
#: People per community when friendships are local (``WorldConfig.friend_locality``).
COMMUNITY_SIZE = 40


@dataclass(frozen=True)
class DriftConfig:
    """How the world changes from ``start_day`` on (for the monitoring chapter).

    Three things can happen at once: a topic trends (everyone grows more interested in it and more posts are
    about it), a cohort of people moves its interests to another topic, and a new device (``"tablet"``, unseen
    before) takes a share of sessions.
    """

    start_day: int = 21
    trending_topic: str | None = "climate"
    trend_strength: float = 0.35
    shifted_user_share: float = 0.3
    shift_to_topic: str = "gaming"
    new_device_share: float = 0.25

    def validate(self, n_days: int) -> None:
        require_int("drift.start_day", self.start_day, 1, n_days - 1)
        topics = f"one of {', '.join(vocab.TOPICS)}"
        if self.trending_topic is not None:
            require("drift.trending_topic", self.trending_topic, self.trending_topic in vocab.TOPICS,
                     f"None or {topics}")
        require("drift.shift_to_topic", self.shift_to_topic, self.shift_to_topic in vocab.TOPICS, topics)
        require_float("drift.trend_strength", self.trend_strength, 0.0, 1.0)
        require_float("drift.shifted_user_share", self.shifted_user_share, 0.0, 1.0)
        require_float("drift.new_device_share", self.new_device_share, 0.0, 1.0)


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of the simulated world, validated on creation.

    The defaults are the book's default world; ``WorldConfig.at_scale("small" | "default" | "large")``
    changes the population size. A bad value raises ``ValueError`` naming the field and what it accepts.
    """

    seed: int = 0
    n_people: int = SCALES["default"]["n_people"]
    n_pages: int = SCALES["default"]["n_pages"]
    n_days: int = 28
    start: str = "2026-01-05"
    sessions_per_day: float = 0.6
    passive_share: float = 0.3
    interest_concentration: float = 0.6
    new_user_share: float = 0.08
    mean_friends: float = 14.0
    mean_follows: float = 5.0
    hub_share: float = 0.0  # share of people who befriend and follow thousands of accounts ("hubs")
    hub_degree: int = 2000  # how many accounts each hub connects to (befriended people and followed pages)
    # share of each person's candidate friends drawn from their own community (a town, a school: about
    # COMMUNITY_SIZE people), who are also preferred: real friend graphs are clustered; 0 leaves the default
    # graph, homophilous but barely clustered (the experiments chapter measures both)
    friend_locality: float = 0.0
    person_posts_per_day: float = 0.5
    page_posts_per_day: float = 2.0
    mean_feed_length: float = 10.0
    candidate_window_hours: float = 48.0
    max_network_candidates: int = 120
    discovery_candidates: int = 6
    position_bias: float = 0.6
    freshness_half_life_hours: float = 24.0
    topic_label_accuracy: float = 0.9
    missing_age_share: float = 0.08
    impossible_age_share: float = 0.01
    country_variant_share: float = 0.15
    duplicate_event_share: float = 0.005
    drift: DriftConfig | None = None
    # Ranking responsibly (chapter 11); 0 leaves each mechanism out, and the world every other chapter reads.
    # A share of posts is harmful or misleading (a ground-truth label, ``World.truth.post_harmful``): more often
    # from clickbait farms and about politics, health or finance, often written with a misleading phrase, and
    # ``harmful_appeal`` more log-odds of a click, comment and share (outrage travels), half of it of a hide.
    harmful_share: float = 0.0
    harmful_appeal: float = 1.0
    # A burst of ``spam_posts`` near-duplicate posts (one template per account, a word or two changed) from the
    # ``spam_accounts`` most-followed pages, over ``spam_hours`` from day ``spam_day`` (``truth.post_spam``).
    spam_posts: int = 0
    spam_accounts: int = 3
    spam_day: int = 21
    spam_hours: float = 48.0

    def __post_init__(self) -> None:
        require_int("seed", self.seed, 0, 2**32 - 1)
        require_int("n_people", self.n_people, 50, 2_000_000)
        require_int("n_pages", self.n_pages, 1, 100_000)
        require_int("n_days", self.n_days, 7, 365)
        try:
            pd.Timestamp(self.start)
        except (ValueError, TypeError):
            require("start", self.start, False, "an ISO date such as '2026-01-05'")
        require_float("sessions_per_day", self.sessions_per_day, 0.01, 50.0)
        require_float("interest_concentration", self.interest_concentration, 0.05, 1000.0)
        require_float("mean_friends", self.mean_friends, 1.0, 500.0)
        require_float("mean_follows", self.mean_follows, 0.0, 500.0)
        require_float("hub_share", self.hub_share, 0.0, 0.1)
        require_int("hub_degree", self.hub_degree, 1, 1_000_000)
        require_float("friend_locality", self.friend_locality, 0.0, 1.0)
        require_float("person_posts_per_day", self.person_posts_per_day, 0.0, 50.0)
        require_float("page_posts_per_day", self.page_posts_per_day, 0.0, 500.0)
        require_float("mean_feed_length", self.mean_feed_length, 1.0, 200.0)
        require_float("candidate_window_hours", self.candidate_window_hours, 1.0, 24.0 * 30)
        require_int("max_network_candidates", self.max_network_candidates, 1, 100_000)
        require_int("discovery_candidates", self.discovery_candidates, 0, 1000)
        require_float("position_bias", self.position_bias, 0.0, 5.0)
        require_float("freshness_half_life_hours", self.freshness_half_life_hours, 0.1, 24.0 * 365)
        require_float("harmful_appeal", self.harmful_appeal, 0.0, 5.0)
        require_int("spam_posts", self.spam_posts, 0, 1_000_000)
        if self.spam_posts:  # the burst's settings matter, and must fit the world, only when there is one
            require_int("spam_accounts", self.spam_accounts, 1, self.n_pages)
            require_int("spam_day", self.spam_day, 0, self.n_days - 1)
            require_float("spam_hours", self.spam_hours, 1.0, 24.0 * self.n_days)
        for name in ("passive_share", "new_user_share", "topic_label_accuracy", "missing_age_share",
                     "impossible_age_share", "country_variant_share", "duplicate_event_share", "harmful_share"):
            require_float(name, getattr(self, name), 0.0, 1.0)
        if self.drift is not None:
            require("drift", self.drift, isinstance(self.drift, DriftConfig), "None or a DriftConfig")
            self.drift.validate(self.n_days)

    @classmethod
    def at_scale(cls, scale: str, **overrides: Any) -> WorldConfig:
        """The config of a named scale (``small``, ``default``, ``large``), with any field overridden."""
        require("scale", scale, scale in SCALES, f"one of {', '.join(SCALES)}")
        return cls(**{**SCALES[scale], **overrides})

    @property
    def start_time(self) -> pd.Timestamp:
        return pd.Timestamp(self.start)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WorldConfig:
        values = dict(values)
        if values.get("drift") is not None:
            values["drift"] = DriftConfig(**values["drift"])
        return cls(**values)



def to_timestamps(config: WorldConfig, hours: np.ndarray) -> pd.Series:
    """Timestamps (millisecond resolution) of ``hours`` since the world's start."""
    seconds = np.round(np.asarray(hours, dtype=float) * _HOUR).astype("int64")
    return pd.Series(np.datetime64(config.start_time, "ms") + seconds.astype("timedelta64[s]"))
