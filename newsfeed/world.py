"""A simulated social network whose news feed the book learns to rank.

The world is a generative model with *ground truth*: every person has latent topic interests, every post a
latent quality and clickbait-ness, every friendship a latent closeness, and every feed position an
examination probability. From these the world knows the true probability of each reaction for any
(user, post, position, time). The observable tables (``users``, ``posts``, ``edges``, ``sessions``,
``impressions``) are what a real company would log; the latent state lives apart in ``World.truth`` so that
no chapter can leak it into features by accident.

Impressions are logged by a legacy ranker (fresh, popular, friends first, plus noise), so the logs carry its
bias, and they are dirty the way real logs are (see ``data/README.md`` for the datasheet).

Use::

    from newsfeed.world import WorldConfig, simulate
    world = simulate(WorldConfig(seed=0))
    world.impressions.head()
    world.probabilities(user_id=[3], post_id=[10], position=[1], time=["2026-01-20 18:00"])
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from newsfeed import vocabulary as vocab

REACTIONS: tuple[str, ...] = ("click", "like", "comment", "share", "hide")
SCALES: dict[str, dict[str, int]] = {
    "small": {"n_people": 400, "n_pages": 16},
    "default": {"n_people": 2000, "n_pages": 60},
    "large": {"n_people": 20000, "n_pages": 600},
}
_HOUR = 3600.0
_N_TOPICS = len(vocab.TOPICS)
_DEVICES = (*vocab.DEVICES, vocab.DRIFT_DEVICE)

# Coefficients of the outcome model: logit of P(reaction | the user examined the post). Terms, in order:
# intercept, topic affinity, closeness to the author, freshness, quality - 0.5, clickbait, media preference.
_LOGIT = {
    "click": (-2.3, 0.9, 0.8, 0.6, 1.5, 2.2, 1.0),
    "like": (-3.2, 0.8, 2.2, 0.4, 3.5, -1.6, 0.6),
    "comment": (-6.0, 0.5, 3.2, 0.5, 1.2, -0.5, 0.3),
    "share": (-6.4, 0.9, 0.6, 0.6, 4.0, -0.3, 0.4),
    "hide": (-5.6, -0.7, -1.8, 0.0, -1.5, 2.8, -0.4),
}
# How much being a passive user lowers each reaction's logit (they read, and rarely react).
_PASSIVE_SHIFT = {"click": -0.3, "like": -2.2, "comment": -2.8, "share": -1.8, "hide": -0.5}
# How much being privacy-minded lowers the public reactions' log-odds.
_PRIVACY_SHIFT = {"like": 0.7, "comment": 1.4, "share": 1.4}
# Extra log-odds of video on each device (ios, android, web, tablet): video plays better on phones.
_VIDEO_BY_DEVICE = np.array([0.3, 0.2, -0.5, 0.4])
# Mean log dwell seconds by media type (text, image, video, link), for an examined post.
_DWELL_BY_MEDIA = np.array([1.3, 1.1, 2.3, 1.6])


# --------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------
def _require(name: str, value: Any, ok: bool, accepts: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: {name} accepts {accepts}")


def _require_ids(name: str, values: np.ndarray, hi: int, kind: str) -> None:
    """Refuse ids that are not integers from 0 to ``hi - 1`` (``name`` of ``kind``)."""
    valid = np.issubdtype(values.dtype, np.integer) and bool(np.all((values >= 0) & (values < hi)))
    bad = np.ravel(values)[:3].tolist() if not valid and not np.issubdtype(values.dtype, np.integer) \
        else np.ravel(values[(values < 0) | (values >= hi)])[:3].tolist()
    _require(name, bad, valid, f"integer ids from 0 to {hi - 1} ({name} of {kind})")


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    is_int = isinstance(value, int | np.integer) and not isinstance(value, bool)
    _require(name, value, is_int and lo <= value <= hi, f"an integer from {lo:,} to {hi:,}")


def _check_float(name: str, value: Any, lo: float, hi: float) -> None:
    is_num = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    _require(name, value, is_num and math.isfinite(value) and lo <= value <= hi, f"a number from {lo} to {hi}")


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
        _check_int("drift.start_day", self.start_day, 1, n_days - 1)
        topics = f"one of {', '.join(vocab.TOPICS)}"
        if self.trending_topic is not None:
            _require("drift.trending_topic", self.trending_topic, self.trending_topic in vocab.TOPICS,
                     f"None or {topics}")
        _require("drift.shift_to_topic", self.shift_to_topic, self.shift_to_topic in vocab.TOPICS, topics)
        _check_float("drift.trend_strength", self.trend_strength, 0.0, 1.0)
        _check_float("drift.shifted_user_share", self.shifted_user_share, 0.0, 1.0)
        _check_float("drift.new_device_share", self.new_device_share, 0.0, 1.0)


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

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0, 2**32 - 1)
        _check_int("n_people", self.n_people, 50, 2_000_000)
        _check_int("n_pages", self.n_pages, 1, 100_000)
        _check_int("n_days", self.n_days, 7, 365)
        try:
            pd.Timestamp(self.start)
        except (ValueError, TypeError):
            _require("start", self.start, False, "an ISO date such as '2026-01-05'")
        _check_float("sessions_per_day", self.sessions_per_day, 0.01, 50.0)
        _check_float("interest_concentration", self.interest_concentration, 0.05, 1000.0)
        _check_float("mean_friends", self.mean_friends, 1.0, 500.0)
        _check_float("mean_follows", self.mean_follows, 0.0, 500.0)
        _check_float("person_posts_per_day", self.person_posts_per_day, 0.0, 50.0)
        _check_float("page_posts_per_day", self.page_posts_per_day, 0.0, 500.0)
        _check_float("mean_feed_length", self.mean_feed_length, 1.0, 200.0)
        _check_float("candidate_window_hours", self.candidate_window_hours, 1.0, 24.0 * 30)
        _check_int("max_network_candidates", self.max_network_candidates, 1, 100_000)
        _check_int("discovery_candidates", self.discovery_candidates, 0, 1000)
        _check_float("position_bias", self.position_bias, 0.0, 5.0)
        _check_float("freshness_half_life_hours", self.freshness_half_life_hours, 0.1, 24.0 * 365)
        for name in ("passive_share", "new_user_share", "topic_label_accuracy", "missing_age_share",
                     "impossible_age_share", "country_variant_share", "duplicate_event_share"):
            _check_float(name, getattr(self, name), 0.0, 1.0)
        if self.drift is not None:
            _require("drift", self.drift, isinstance(self.drift, DriftConfig), "None or a DriftConfig")
            self.drift.validate(self.n_days)

    @classmethod
    def at_scale(cls, scale: str, **overrides: Any) -> WorldConfig:
        """The config of a named scale (``small``, ``default``, ``large``), with any field overridden."""
        _require("scale", scale, scale in SCALES, f"one of {', '.join(SCALES)}")
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


# --------------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------------
@dataclass
class GroundTruth:
    """The latent state of the world. Nothing here is observable to a real company.

    Arrays are indexed by account id (people first, then pages) or by post id; ``impressions`` holds the true
    probability of each reaction (and the expected dwell) for every logged impression, keyed by
    ``impression_id``.
    """

    interests: np.ndarray  # (n_people, n_topics), rows sum to 1
    interests_after_drift: np.ndarray  # the same after DriftConfig.start_day
    click_bias: np.ndarray  # (n_people,) personal log-odds shift for clicks
    react_bias: np.ndarray  # (n_people,) personal log-odds shift for likes, comments, shares
    passive: np.ndarray  # (n_people,) bool
    privacy_minded: np.ndarray  # (n_people,) bool: hides age more often, comments and shares less
    media_pref: np.ndarray  # (n_people, 4) log-odds by media type
    activity: np.ndarray  # (n_people,) expected sessions per day
    true_age: np.ndarray  # (n_people,) the real age behind the dirty profile field
    true_country: np.ndarray  # (n_accounts,) ISO code behind the dirty profile field
    post_topic: np.ndarray  # (n_posts,) true topic index (the observable label is noisy)
    post_quality: np.ndarray  # (n_posts,) in (0, 1)
    post_clickbait: np.ndarray  # (n_posts,) in [0, 1]
    edge_key: np.ndarray  # sorted user_id * n_accounts + target_id, both directions for friendships
    edge_closeness: np.ndarray  # closeness in [0, 1] for each edge_key
    session_depth: np.ndarray  # (n_sessions,) how many posts each session would scroll through
    impressions: pd.DataFrame = field(repr=False)

    _ARRAYS = ("interests", "interests_after_drift", "click_bias", "react_bias", "passive", "privacy_minded",
               "media_pref", "activity", "true_age", "true_country", "post_topic", "post_quality",
               "post_clickbait", "edge_key", "edge_closeness", "session_depth")

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "latent.npz", **{name: getattr(self, name) for name in self._ARRAYS})
        self.impressions.to_parquet(folder / "impression_probabilities.parquet", index=False)

    @classmethod
    def load(cls, folder: Path) -> GroundTruth:
        with np.load(folder / "latent.npz", allow_pickle=False) as arrays:
            values = {name: arrays[name] for name in cls._ARRAYS}
        return cls(**values, impressions=pd.read_parquet(folder / "impression_probabilities.parquet"))


Policy = Callable[[pd.DataFrame], np.ndarray]
"""A ranking policy: given one batch of candidate rows (many sessions at once), a score per row; the world
shows each session's candidates in descending score order."""


@dataclass
class Rollout:
    """What a policy's rollout produced: the observable impressions and, apart, their true probabilities."""

    impressions: pd.DataFrame
    probabilities: pd.DataFrame


# --------------------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------------------
@dataclass
class World:
    """The observable tables, the ground truth, and methods that answer for any (user, post, position, time)."""

    config: WorldConfig
    users: pd.DataFrame
    posts: pd.DataFrame
    edges: pd.DataFrame
    sessions: pd.DataFrame
    impressions: pd.DataFrame
    truth: GroundTruth = field(repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # ---- sizes and time ---------------------------------------------------------------------------------
    @property
    def n_people(self) -> int:
        return self.config.n_people

    @property
    def n_accounts(self) -> int:
        return self.config.n_people + self.config.n_pages

    def hours(self, times: Any) -> np.ndarray:
        """Hours since the world's start for timestamps (strings, ``Timestamp`` s or datetime arrays)."""
        stamps = pd.to_datetime(pd.Series(np.atleast_1d(np.asarray(times, dtype=object))))
        return ((stamps - self.config.start_time) / pd.Timedelta(hours=1)).to_numpy(dtype=float)

    def timestamps(self, hours: np.ndarray) -> pd.Series:
        return _to_timestamps(self.config, hours)

    # ---- ground-truth answers ---------------------------------------------------------------------------
    def probabilities(self, user_id: Any, post_id: Any, position: Any, time: Any,
                      device: Any = None) -> pd.DataFrame:
        """True probability of each reaction, and the expected dwell, for any (user, post, position, time).

        ``position`` is 1 for the top of the feed. ``device`` defaults to each user's primary device. The
        arguments broadcast like numpy arrays. Raises ``ValueError`` for unknown ids, positions below 1, or
        posts that do not exist yet at ``time``.
        """
        users, posts, positions, hours, devices = self._validate_query(user_id, post_id, position, time, device)
        return _public(_true_probabilities(self, users, posts, positions, hours, devices))

    def sample_outcomes(self, user_id: Any, post_id: Any, position: Any, time: Any, device: Any = None,
                        seed: int = 0) -> pd.DataFrame:
        """Outcomes drawn from the true probabilities (reactions as 0/1 and ``dwell_seconds``)."""
        users, posts, positions, hours, devices = self._validate_query(user_id, post_id, position, time, device)
        probs = _true_probabilities(self, users, posts, positions, hours, devices)
        return _sample(probs, np.random.default_rng(seed))

    def true_topics(self, post_id: Any) -> np.ndarray:
        """Each post's true topic, by name. The ``topic`` column of ``posts`` is a tagger's label, wrong for
        about one post in ten; only the simulator knows the truth."""
        posts = np.asarray(post_id)
        posts = posts.astype(np.int64) if posts.size == 0 else posts  # no posts, no topics
        _require_ids("post_id", posts, len(self.posts), "a post")
        return np.array(vocab.TOPICS, dtype=object)[self.truth.post_topic[posts]]

    def _validate_query(self, user_id: Any, post_id: Any, position: Any, time: Any,
                        device: Any) -> tuple[np.ndarray, ...]:
        users, posts, positions = (np.asarray(x) for x in (user_id, post_id, position))
        _require_ids("user_id", users, self.n_people, "a person")
        _require_ids("post_id", posts, len(self.posts), "a post")
        _require("position", np.ravel(positions)[:3].tolist(),
                 np.issubdtype(positions.dtype, np.number) and bool(np.all(positions >= 1)),
                 "integers >= 1 (1 is the top of the feed)")
        hours = self.hours(np.ravel(np.asarray(time, dtype=object))).reshape(np.shape(time))
        devices = self._primary_devices(users) if device is None else _device_codes(device)
        users, posts, positions, hours, devices = (np.ravel(x) for x in np.broadcast_arrays(
            users, posts, positions, hours, devices))
        early = hours < self._post_hours[posts]
        _require("time", self.timestamps(hours[early][:3]).astype(str).tolist(), not early.any(),
                 "times at or after the post's created_at (a post cannot be shown before it exists)")
        return users.astype(np.int64), posts.astype(np.int64), positions.astype(float), hours, devices

    def _primary_devices(self, users: np.ndarray) -> np.ndarray:
        if "primary_device" not in self._cache:
            self._cache["primary_device"] = _device_codes(
                self.users["device"].iloc[: self.n_people].fillna("web").to_numpy())
        return self._cache["primary_device"][users]

    @property
    def _post_hours(self) -> np.ndarray:
        if "post_hours" not in self._cache:
            self._cache["post_hours"] = self.hours(self.posts["created_at"].to_numpy())
        return self._cache["post_hours"]

    @property
    def _post_author(self) -> np.ndarray:
        if "post_author" not in self._cache:
            self._cache["post_author"] = self.posts["author_id"].to_numpy(dtype=np.int64)
        return self._cache["post_author"]

    @property
    def _post_media(self) -> np.ndarray:
        if "post_media" not in self._cache:
            codes = {name: code for code, name in enumerate(vocab.MEDIA_TYPES)}
            self._cache["post_media"] = self.posts["media_type"].map(codes).to_numpy(dtype=np.int64)
        return self._cache["post_media"]

    # ---- serving traffic --------------------------------------------------------------------------------
    def rollout(self, policy: Policy, sessions: pd.DataFrame, seed: int = 0,
                history: pd.DataFrame | None = None) -> Rollout:
        """Serve ``sessions`` with ``policy`` and let the world respond.

        For each session the world generates candidates (unseen posts of the last
        ``candidate_window_hours`` from friends and followed pages, plus trending ``discovery`` posts), asks
        the policy for scores in hourly batches, shows the top ``session depth`` posts and samples outcomes
        from the ground truth. ``history`` (earlier impressions) sets what each user has already seen and the
        posts' engagement counters; by default it is empty. Exact repeats of a row (logging retries) count
        once; two different rows with one ``impression_id`` are refused, since a rollout numbers its
        impressions from 0 and appending one to a log unrenumbered would otherwise lose rows silently.
        """
        needed = {"session_id", "user_id", "started_at", "device"}
        missing = needed - set(sessions.columns)
        _require("sessions", sorted(missing), not missing, f"a DataFrame with columns {sorted(needed)}")
        return _rollout(self, policy, sessions, np.random.default_rng(seed), history)

    # ---- persistence ------------------------------------------------------------------------------------
    TABLES = ("users", "posts", "edges", "sessions", "impressions")

    def save(self, folder: str | Path) -> Path:
        """Write the observable tables as Parquet into ``folder`` and the ground truth into ``folder/truth``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.TABLES:
            getattr(self, name).to_parquet(folder / f"{name}.parquet", index=False)
        self.truth.save(folder / "truth")
        (folder / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> World:
        folder = Path(folder)
        config = WorldConfig.from_dict(json.loads((folder / "config.json").read_text()))
        tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in cls.TABLES}
        return cls(config=config, truth=GroundTruth.load(folder / "truth"), **tables)


def _device_codes(devices: Any) -> np.ndarray:
    values = np.atleast_1d(np.asarray(devices, dtype=object))
    lookup = {name: code for code, name in enumerate(_DEVICES)}
    bad = [v for v in set(values.tolist()) if v not in lookup]
    _require("device", sorted(map(str, bad))[:3], not bad, f"one of {', '.join(_DEVICES)}")
    return np.array([lookup[v] for v in values.tolist()], dtype=np.int64).reshape(values.shape)


def _to_timestamps(config: WorldConfig, hours: np.ndarray) -> pd.Series:
    seconds = np.round(np.asarray(hours, dtype=float) * _HOUR).astype("int64")
    return pd.Series(config.start_time + pd.to_timedelta(seconds, unit="s")).astype("datetime64[ms]")


# --------------------------------------------------------------------------------------------------------
# The outcome model
# --------------------------------------------------------------------------------------------------------
def _edge_lookup(world: World, users: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_edge, closeness) for each (user, target) pair."""
    truth = world.truth
    keys = users.astype(np.int64) * world.n_accounts + targets.astype(np.int64)
    where = np.searchsorted(truth.edge_key, keys)
    where = np.minimum(where, len(truth.edge_key) - 1)
    found = truth.edge_key[where] == keys
    return found, np.where(found, truth.edge_closeness[where], 0.0)


def _true_probabilities(world: World, users: np.ndarray, posts: np.ndarray, positions: np.ndarray,
                        hours: np.ndarray, devices: np.ndarray) -> pd.DataFrame:
    cfg, truth = world.config, world.truth
    topic = truth.post_topic[posts]
    interest = truth.interests[users, topic]
    if cfg.drift is not None:
        after = hours >= cfg.drift.start_day * 24.0
        interest = np.where(after, truth.interests_after_drift[users, topic], interest)
    affinity = np.sqrt(_N_TOPICS * interest) - 1.0
    _, closeness = _edge_lookup(world, users, world._post_author[posts])
    age = np.maximum(hours - world._post_hours[posts], 0.0)
    fresh = np.exp2(-age / cfg.freshness_half_life_hours)
    quality = truth.post_quality[posts] - 0.5
    clickbait = truth.post_clickbait[posts]
    media = world._post_media[posts]
    media_pref = truth.media_pref[users, media] + np.where(media == 2, _VIDEO_BY_DEVICE[devices], 0.0)
    passive = truth.passive[users]
    examined = positions ** (-cfg.position_bias)

    out: dict[str, np.ndarray] = {}
    terms = np.stack([np.ones_like(affinity), affinity, closeness, fresh, quality, clickbait, media_pref])
    for reaction in REACTIONS:
        logit = np.asarray(_LOGIT[reaction]) @ terms + np.where(passive, _PASSIVE_SHIFT[reaction], 0.0)
        if reaction == "click":
            logit = logit + truth.click_bias[users]
        elif reaction in ("like", "comment", "share"):
            # Privacy-minded people react less in public: fewer likes, far fewer comments and shares.
            logit = logit + truth.react_bias[users] - _PRIVACY_SHIFT[reaction] * truth.privacy_minded[users]
        out[f"p_{reaction}"] = examined / (1.0 + np.exp(-logit))
    # Dwell: a short scroll past when not examined; log-normal reading time when examined (longer if clicked).
    mu = _DWELL_BY_MEDIA[media] + 0.35 * affinity + 1.0 * quality + 0.3 * passive
    read = np.exp(mu + 0.5 * 0.8**2)
    p_click_given_exam = out["p_click"] / examined
    out["expected_dwell"] = (1 - examined) * 0.9 + examined * read * (1 + p_click_given_exam * (np.exp(1.2) - 1))
    out["_examined"] = examined
    out["_mu"] = mu
    return pd.DataFrame(out)


def _sample(probs: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Draw outcomes: examined ~ position bias; each reaction ~ its conditional probability if examined."""
    n = len(probs)
    examined = rng.random(n) < probs["_examined"].to_numpy()
    out = {}
    for reaction in REACTIONS:
        conditional = probs[f"p_{reaction}"].to_numpy() / probs["_examined"].to_numpy()
        out[reaction] = (examined & (rng.random(n) < conditional)).astype(np.int8)
    reading = np.exp(probs["_mu"].to_numpy() + 1.2 * out["click"] + 0.8 * rng.standard_normal(n))
    scroll = rng.uniform(0.3, 1.5, n)
    out["dwell_seconds"] = np.round(np.where(examined, reading, scroll), 1)
    return pd.DataFrame(out)


def _public(probs: pd.DataFrame) -> pd.DataFrame:
    return probs[[f"p_{r}" for r in REACTIONS] + ["expected_dwell"]].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------
# Serving traffic: candidates, policy, outcomes
# --------------------------------------------------------------------------------------------------------
def legacy_ranker(seed: int = 0) -> Policy:
    """The ranker that logged the data: fresh posts, posts with many likes, and friends first, plus noise.

    It knows nothing of the user's interests, so its logs over-expose popular and fresh posts (the bias the
    later chapters must correct for). The noise gives the logs the variety a model needs to learn from.
    """
    rng = np.random.default_rng(seed)

    def score(candidates: pd.DataFrame) -> np.ndarray:
        fresh = np.exp2(-candidates["post_age_hours"].to_numpy() / 12.0)
        popular = np.log1p(candidates["likes_so_far"].to_numpy())
        source = candidates["source"].to_numpy()
        network = np.where(source == "friend", 0.6, np.where(source == "follow", 0.2, 0.0))
        return fresh + 0.4 * popular + network + rng.gumbel(0.0, 0.6, len(candidates))

    return score


class _Network:
    """Per-person inbox of post ids (fan-out on write) and the sources they come from."""

    def __init__(self, world: World) -> None:
        n_people, n_accounts = world.n_people, world.n_accounts
        edges = world.edges
        self.source_of = {}
        order = np.argsort(edges["user_id"].to_numpy(), kind="stable")
        users = edges["user_id"].to_numpy()[order]
        targets = edges["target_id"].to_numpy()[order]
        bounds = np.searchsorted(users, np.arange(n_people + 1))
        self.sources = [targets[bounds[u]:bounds[u + 1]] for u in range(n_people)]
        authors = world._post_author
        post_order = np.argsort(authors, kind="stable")  # post ids stay time-ordered within an author
        self.author_posts = post_order
        self.author_bounds = np.searchsorted(authors[post_order], np.arange(n_accounts + 1))
        self._inbox: dict[int, np.ndarray] = {}

    def inbox(self, user: int) -> np.ndarray:
        cached = self._inbox.get(user)
        if cached is None:
            parts = [self.author_posts[self.author_bounds[a]:self.author_bounds[a + 1]] for a in self.sources[user]]
            cached = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
            self._inbox[user] = cached
        return cached


def _batch_starts(hours: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Start indices of the policy's batches over time-sorted sessions: a new batch every clock hour (the
    counters a policy sees refresh hourly), and whenever a user would appear twice in one batch (so that the
    user's second session knows what the first one showed)."""
    starts, hour, members = [0], int(np.floor(hours[0])) if len(hours) else 0, set()
    for i, (h, user) in enumerate(zip(np.floor(hours).astype(np.int64).tolist(), users.tolist(), strict=True)):
        if h != hour or user in members:
            if i:
                starts.append(i)
            hour, members = h, set()
        members.add(user)
    return np.asarray(starts if len(hours) else [], dtype=np.int64)


def _rollout(world: World, policy: Policy, sessions: pd.DataFrame, rng: np.random.Generator,
             history: pd.DataFrame | None) -> Rollout:
    cfg = world.config
    if "network" not in world._cache:
        world._cache["network"] = _Network(world)
    network: _Network = world._cache["network"]
    post_hours = world._post_hours
    authors = world._post_author
    n_posts = len(post_hours)
    counters = {name: np.zeros(n_posts, dtype=np.int64) for name in ("impressions", "click", "like", "hide")}
    seen: dict[int, set[int]] = {}
    if history is not None and len(history):
        hist = history.drop_duplicates()  # logging retries repeat a row exactly
        clash = hist["impression_id"][hist["impression_id"].duplicated()].unique()
        _require("history", clash[:3].tolist(), not len(clash), "impressions whose impression_id is unique (a "
                 "retried event may repeat its row exactly; renumber a rollout before appending it to a log)")
        np.add.at(counters["impressions"], hist["post_id"].to_numpy(), 1)
        for name in ("click", "like", "hide"):
            np.add.at(counters[name], hist["post_id"].to_numpy(), hist[name].to_numpy(dtype=np.int64))
        for user, post in zip(hist["user_id"].to_numpy().tolist(), hist["post_id"].to_numpy().tolist(),
                              strict=True):
            seen.setdefault(user, set()).add(post)

    sessions = sessions.sort_values(["started_at", "session_id"], kind="stable").reset_index(drop=True)
    s_ids = sessions["session_id"].to_numpy(dtype=np.int64)
    s_users = sessions["user_id"].to_numpy(dtype=np.int64)
    s_hours = world.hours(sessions["started_at"].to_numpy())
    s_devices = sessions["device"].to_numpy(dtype=object)
    depth = world.truth.session_depth[s_ids]
    batch_starts = _batch_starts(s_hours, s_users)
    batch_ends = np.r_[batch_starts[1:], len(sessions)] if len(sessions) else batch_starts
    window = cfg.candidate_window_hours

    shown_parts: list[dict[str, np.ndarray]] = []
    for start, end in zip(batch_starts.tolist(), batch_ends.tolist(), strict=True):
        t0 = s_hours[start]
        # Trending pool for discovery: posts of the last 24 hours, weighted by engagement so far.
        lo, hi = np.searchsorted(post_hours, [t0 - 24.0, t0])
        pool = np.arange(lo, hi)
        pool_weight = (counters["like"][pool] + 0.2 * counters["click"][pool] + 1.0) if len(pool) else None
        discovery = (rng.choice(pool, size=(end - start, cfg.discovery_candidates), p=pool_weight / pool_weight.sum())
                     if cfg.discovery_candidates and len(pool) else None)
        rows_session, rows_post = [], []
        for i in range(start, end):
            user, t = int(s_users[i]), s_hours[i]
            inbox = network.inbox(user)
            ib_lo, ib_hi = np.searchsorted(post_hours[inbox], [t - window, t])
            cand = inbox[max(ib_lo, ib_hi - cfg.max_network_candidates):ib_hi]
            if discovery is not None:
                extra = discovery[i - start]
                extra = extra[post_hours[extra] < t]
                cand = np.unique(np.concatenate([cand, extra]))
            user_seen = seen.get(user)
            keep = [p for p in cand.tolist() if authors[p] != user and (user_seen is None or p not in user_seen)]
            rows_session.extend([i] * len(keep))
            rows_post.extend(keep)
        if not rows_post:
            continue
        r_sess = np.asarray(rows_session, dtype=np.int64)
        r_post = np.asarray(rows_post, dtype=np.int64)
        r_user = s_users[r_sess]
        r_hours = s_hours[r_sess]
        is_edge, _ = _edge_lookup(world, r_user, authors[r_post])
        source = np.where(is_edge, np.where(authors[r_post] < world.n_people, "friend", "follow"), "discovery")
        candidates = pd.DataFrame({
            "session_id": s_ids[r_sess],
            "user_id": r_user,
            "post_id": r_post,
            "author_id": authors[r_post],
            "source": source,
            "requested_at": world.timestamps(r_hours),
            "device": s_devices[r_sess],
            "post_age_hours": r_hours - post_hours[r_post],
            "impressions_so_far": counters["impressions"][r_post],
            "clicks_so_far": counters["click"][r_post],
            "likes_so_far": counters["like"][r_post],
            "hides_so_far": counters["hide"][r_post],
        })
        scores = np.asarray(policy(candidates), dtype=float)
        _require("policy", f"{scores.shape} scores for {len(candidates)} candidates",
                 scores.shape == (len(candidates),) and bool(np.all(np.isfinite(scores))),
                 "a callable returning one finite score per candidate row")
        order = np.lexsort((-scores, r_sess))
        r_sess_sorted = r_sess[order]
        group_start = np.r_[0, np.flatnonzero(r_sess_sorted[1:] != r_sess_sorted[:-1]) + 1]
        rank = np.arange(len(order)) - np.repeat(group_start, np.diff(np.r_[group_start, len(order)]))
        take = order[rank < depth[r_sess_sorted]]
        position = rank[rank < depth[r_sess_sorted]] + 1
        shown = {"row_session": r_sess[take], "post_id": r_post[take], "position": position,
                 "source": source[take]}
        shown["hours"] = s_hours[shown["row_session"]] + (position - 1) * 4.0 / _HOUR
        users = s_users[shown["row_session"]]
        devices = _device_codes(s_devices[shown["row_session"]])
        probs = _true_probabilities(world, users, shown["post_id"], position.astype(float), shown["hours"],
                                    devices)
        outcomes = _sample(probs, rng)
        for name in ("click", "like", "hide"):
            np.add.at(counters[name], shown["post_id"], outcomes[name].to_numpy(dtype=np.int64))
        np.add.at(counters["impressions"], shown["post_id"], 1)
        for user, post in zip(users.tolist(), shown["post_id"].tolist(), strict=True):
            seen.setdefault(user, set()).add(post)
        shown.update({name: outcomes[name].to_numpy() for name in outcomes.columns})
        shown.update({name: probs[name].to_numpy() for name in probs.columns if not name.startswith("_")})
        shown_parts.append(shown)

    merged = {k: np.concatenate([part[k] for part in shown_parts]) for k in shown_parts[0]} if shown_parts else {}
    if not merged:
        empty = pd.DataFrame(columns=list(_IMPRESSION_COLUMNS))
        return Rollout(empty, pd.DataFrame(columns=["impression_id", *(f"p_{r}" for r in REACTIONS)]))
    rows = merged["row_session"]
    impressions = pd.DataFrame({
        "impression_id": np.arange(len(rows), dtype=np.int64),
        "session_id": s_ids[rows],
        "user_id": s_users[rows],
        "post_id": merged["post_id"],
        "position": merged["position"].astype(np.int64),
        "timestamp": world.timestamps(merged["hours"]),
        "device": pd.Series(s_devices[rows], dtype="str"),
        "source": pd.Series(merged["source"], dtype="str"),
        **{r: merged[r].astype(np.int8) for r in REACTIONS},
        "dwell_seconds": merged["dwell_seconds"],
    })
    probabilities = pd.DataFrame({"impression_id": impressions["impression_id"],
                                  **{c: merged[c] for c in (*(f"p_{r}" for r in REACTIONS), "expected_dwell")}})
    return Rollout(impressions, probabilities)


_IMPRESSION_COLUMNS = ("impression_id", "session_id", "user_id", "post_id", "position", "timestamp", "device",
                       "source", *REACTIONS, "dwell_seconds")


# --------------------------------------------------------------------------------------------------------
# Generating the world
# --------------------------------------------------------------------------------------------------------
def _people(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = cfg.n_people
    codes = list(vocab.COUNTRIES)
    shares = np.array([vocab.COUNTRIES[c][0] for c in codes])
    country = rng.choice(len(codes), size=n, p=shares / shares.sum())
    mean_age = np.array([vocab.COUNTRIES[c][2] for c in codes])[country]
    age = np.clip(np.round(mean_age + rng.gamma(2.0, 5.0, n) - 10.0 + rng.normal(0, 6, n)), 13, 90)
    # Interests: a sparse mixture over topics, globally skewed, and tilted by age (young: gaming, music,
    # comedy, fashion; older: politics, gardening, finance, health).
    base = 1.0 / np.arange(1, _N_TOPICS + 1) ** 0.5
    base = base[rng.permutation(_N_TOPICS)]
    young = np.isin(np.arange(_N_TOPICS), [vocab.TOPICS.index(t) for t in ("gaming", "music", "comedy", "fashion")])
    old = np.isin(np.arange(_N_TOPICS), [vocab.TOPICS.index(t) for t in ("politics", "gardening", "finance",
                                                                          "health")])
    youth = np.clip((45.0 - age) / 25.0, -1.0, 1.0)[:, None]
    tilt = np.exp(0.9 * youth * young - 0.9 * youth * old)
    alpha = cfg.interest_concentration * base / base.sum() * tilt
    interests = rng.gamma(alpha)
    interests /= interests.sum(axis=1, keepdims=True)
    activity = cfg.sessions_per_day * rng.lognormal(-0.5, 1.0, n)
    passive = rng.random(n) < cfg.passive_share
    privacy = rng.random(n) < 0.2
    media_pref = rng.normal(0.0, 0.5, (n, len(vocab.MEDIA_TYPES)))
    media_pref[:, 2] += 0.6 * np.clip((40.0 - age) / 20.0, -1, 1)  # the young watch more video
    device_p = np.stack([np.full(n, 0.45), np.full(n, 0.40), 0.15 + 0.25 * np.clip((age - 30) / 40, 0, 1)], 1)
    device = _categorical(rng, device_p / device_p.sum(1, keepdims=True))
    new_user = rng.random(n) < cfg.new_user_share
    signup = np.where(new_user, rng.uniform(0, cfg.n_days * 24.0 - 48.0, n),
                      -rng.uniform(24.0 * 30, 24.0 * 365 * 12, n))
    return {"country": country, "age": age, "interests": interests, "activity": activity, "passive": passive,
            "privacy": privacy, "media_pref": media_pref, "device": device, "signup": signup,
            "click_bias": rng.normal(0, 0.5, n), "react_bias": rng.normal(0, 0.6, n),
            "creator": rng.lognormal(-0.5, 1.0, n)}


def _pages(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    m = cfg.n_pages
    popularity = 1.0 / np.arange(1, m + 1) ** 0.9
    popularity = popularity[rng.permutation(m)]
    clickbait_farm = rng.random(m) < 0.15
    return {"topic": rng.integers(0, _N_TOPICS, m), "popularity": popularity / popularity.max(),
            "clickbait_farm": clickbait_farm,
            "quality": np.where(clickbait_farm, rng.beta(2, 6, m), rng.beta(5, 3, m)),
            "country": rng.integers(0, len(vocab.COUNTRIES), m),
            "created": -rng.uniform(24.0 * 365, 24.0 * 365 * 14, m)}


def _friendships(cfg: WorldConfig, people: dict[str, np.ndarray],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Homophilous friendships with a heavy-tailed degree: each person invites friends from a random pool,
    preferring people of similar interests, the same country, and many friends already."""
    n = cfg.n_people
    sociability = rng.lognormal(0.0, 0.8, n)
    target = np.maximum(1, rng.poisson(cfg.mean_friends / 2 * sociability / sociability.mean()))
    unit = people["interests"] / np.linalg.norm(people["interests"], axis=1, keepdims=True)
    pool_size = min(n - 1, 300)
    attract = sociability / sociability.sum()
    src, dst = [], []
    chunk = 512
    for lo in range(0, n, chunk):
        users = np.arange(lo, min(n, lo + chunk))
        pool = rng.choice(n, size=(len(users), pool_size), p=attract)
        similarity = np.einsum("ik,ijk->ij", unit[users], unit[pool])
        same_country = people["country"][users][:, None] == people["country"][pool]
        gumbel = rng.gumbel(size=pool.shape)
        key = 4.0 * similarity + 1.5 * same_country + gumbel
        key[pool == users[:, None]] = -np.inf
        ranked = np.argsort(-key, axis=1)
        for row, user in enumerate(users.tolist()):
            k = int(min(target[user], pool_size))
            chosen = pool[row, ranked[row, :k]]
            src.append(np.full(k, user))
            dst.append(chosen)
    a, b = np.concatenate(src), np.concatenate(dst)
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    u, v = pairs[:, 0], pairs[:, 1]
    similarity = np.sum(unit[u] * unit[v], axis=1)
    same_country = people["country"][u] == people["country"][v]
    mutual = _mutual_friends(n, u, v)
    logit = rng.normal(-1.6, 0.7, len(u)) + 1.5 * similarity + 0.6 * same_country + 0.8 * np.log1p(mutual)
    closeness = 1.0 / (1.0 + np.exp(-logit))
    return u, v, closeness


def _mutual_friends(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """How many friends each pair (u[i], v[i]) has in common: close friends share friends."""
    from scipy.sparse import coo_matrix

    adjacency = coo_matrix((np.ones(2 * len(u)), (np.r_[u, v], np.r_[v, u])), shape=(n, n)).tocsr()
    return np.asarray(adjacency[u].multiply(adjacency[v]).sum(axis=1)).ravel()


def _follows(cfg: WorldConfig, people: dict[str, np.ndarray], pages: dict[str, np.ndarray],
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each person follows a few pages: most follows pick a topic the person likes, then a page of that topic
    by popularity; the rest pick a page by popularity alone. Cost grows with the number of follows only."""
    n, m = cfg.n_people, cfg.n_pages
    count = rng.poisson(cfg.mean_follows * np.sqrt(people["activity"] / people["activity"].mean()))
    users = np.repeat(np.arange(n), count)
    popularity = pages["popularity"] / pages["popularity"].sum()
    chosen = rng.choice(m, size=len(users), p=popularity)
    by_interest = rng.random(len(users)) < 0.7
    topic = _categorical(rng, people["interests"][users])
    for t in range(_N_TOPICS):
        of_topic = np.flatnonzero(pages["topic"] == t)
        slots = np.flatnonzero(by_interest & (topic == t))
        if len(of_topic) and len(slots):
            weight = pages["popularity"][of_topic]
            chosen[slots] = rng.choice(of_topic, size=len(slots), p=weight / weight.sum())
    pairs = np.unique(np.stack([users, chosen], axis=1), axis=0)
    closeness = 0.3 * rng.beta(2, 5, len(pairs))
    return pairs[:, 0], pairs[:, 1] + n, closeness


def _posts(cfg: WorldConfig, people: dict[str, np.ndarray], pages: dict[str, np.ndarray],
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Posts over the window: people post about their interests, pages about their topic."""
    horizon = cfg.n_days * 24.0
    n = cfg.n_people
    person_rate = cfg.person_posts_per_day * people["creator"] / people["creator"].mean()
    active_days = (horizon - np.maximum(people["signup"], 0.0)) / 24.0
    person_count = rng.poisson(person_rate * active_days)
    page_rate = cfg.page_posts_per_day * (0.3 + 1.4 * pages["popularity"]) / (0.3 + 1.4 * pages["popularity"]).mean()
    page_count = rng.poisson(page_rate * cfg.n_days)
    author = np.concatenate([np.repeat(np.arange(n), person_count),
                             np.repeat(np.arange(cfg.n_pages), page_count) + n])
    starts = np.concatenate([np.repeat(np.maximum(people["signup"], 0.0), person_count),
                             np.zeros(page_count.sum())])
    day_hours = rng.uniform(starts, horizon)
    # A diurnal rhythm: push times towards the evening by resampling the hour of day.
    hour_of_day = _diurnal_hours(rng, len(author))
    hours = np.floor(day_hours / 24.0) * 24.0 + hour_of_day
    hours = np.clip(np.where(hours < starts, day_hours, hours), 0.0, horizon - 1e-3)
    is_page = author >= n
    topic = np.empty(len(author), dtype=np.int64)
    person_authors = author[~is_page]
    topic[~is_page] = _categorical(rng, people["interests"][person_authors])
    page_idx = author[is_page] - n
    off_topic = rng.random(len(page_idx)) < 0.1
    topic[is_page] = np.where(off_topic, rng.integers(0, _N_TOPICS, len(page_idx)), pages["topic"][page_idx])
    if cfg.drift is not None and cfg.drift.trending_topic is not None:
        trending = vocab.TOPICS.index(cfg.drift.trending_topic)
        after = hours >= cfg.drift.start_day * 24.0
        topic[after & (rng.random(len(topic)) < 0.5 * cfg.drift.trend_strength + 0.1)] = trending
    media_p = np.where(is_page[:, None], [[0.15, 0.25, 0.3, 0.3]], [[0.4, 0.4, 0.15, 0.05]])
    media = _categorical(rng, media_p)
    person_quality = rng.beta(3, 3, n)
    base_quality = np.where(is_page, pages["quality"][np.where(is_page, author - n, 0)],
                            person_quality[np.where(is_page, 0, author)])
    quality = np.clip(base_quality + rng.normal(0, 0.12, len(author)), 0.02, 0.98)
    farm = np.where(is_page, pages["clickbait_farm"][np.where(is_page, author - n, 0)], False)
    clickbait = np.where(farm, rng.beta(5, 2, len(author)), rng.beta(0.4, 8, len(author)))
    order = np.argsort(hours, kind="stable")
    return {k: v[order] for k, v in {"author": author, "hours": hours, "topic": topic, "media": media,
                                     "quality": quality, "clickbait": clickbait}.items()}


def _categorical(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One draw per row of a (rows, categories) probability matrix."""
    drawn = (probabilities.cumsum(axis=1) < rng.random((len(probabilities), 1))).sum(axis=1)
    return np.minimum(drawn, probabilities.shape[1] - 1)


def _edge_created(joined: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """When an edge was made: some time between both ends joining and the window's start, or at the joining
    moment for people who sign up during the window."""
    return np.where(joined < 0, joined * rng.uniform(0.0, 1.0, len(joined)), joined)


def _diurnal_hours(rng: np.random.Generator, size: int) -> np.ndarray:
    weights = 0.3 + np.exp(-0.5 * ((np.arange(24) - 20.0) / 3.0) ** 2) + 0.5 * np.exp(
        -0.5 * ((np.arange(24) - 8.0) / 2.0) ** 2)
    hour = rng.choice(24, size=size, p=weights / weights.sum())
    return hour + rng.random(size)


def _texts(posts: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[list[Any], list[str]]:
    """A short text per post from its topic's words (70%), general words and a neighbouring topic's words;
    clickbait posts open with a clickbait phrase. Some image and video posts have no caption (None)."""
    n = len(posts["topic"])
    topic_words = np.array([vocab.TOPIC_WORDS[t] for t in vocab.TOPICS])
    general = np.array(vocab.GENERAL_WORDS)
    length = rng.integers(5, 13, n)
    kind = rng.random((n, 12))
    own = topic_words[posts["topic"][:, None], rng.integers(0, topic_words.shape[1], (n, 12))]
    other = topic_words[rng.integers(0, _N_TOPICS, (n, 12)), rng.integers(0, topic_words.shape[1], (n, 12))]
    filler = general[rng.integers(0, len(general), (n, 12))]
    words = np.where(kind < 0.7, own, np.where(kind < 0.9, filler, other))
    bait = posts["clickbait"] > 0.5
    phrase = rng.integers(0, len(vocab.CLICKBAIT_PHRASES), n)
    no_caption = (posts["media"] == 1) | (posts["media"] == 2)
    no_caption &= rng.random(n) < 0.06
    hashtags = np.array([vocab.TOPIC_HASHTAGS[t] for t in vocab.TOPICS])
    n_tags = rng.choice(4, size=n, p=[0.45, 0.3, 0.17, 0.08])
    tag_pick = rng.integers(0, 3, (n, 3))
    texts: list[Any] = []
    tags: list[str] = []
    for i in range(n):
        body = " ".join(words[i, : length[i]])
        if bait[i]:
            body = f"{vocab.CLICKBAIT_PHRASES[phrase[i]]} {body}"
        texts.append(None if no_caption[i] else body)
        picked = dict.fromkeys(hashtags[posts["topic"][i], tag_pick[i, : n_tags[i]]].tolist())
        tags.append(" ".join(picked))
    return texts, tags


def _drifted_interests(cfg: WorldConfig, interests: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    after = interests.copy()
    drift = cfg.drift
    if drift is None:
        return after
    if drift.trending_topic is not None:
        onehot = np.eye(_N_TOPICS)[vocab.TOPICS.index(drift.trending_topic)]
        after = (1 - drift.trend_strength) * after + drift.trend_strength * onehot
    cohort = rng.random(len(after)) < drift.shifted_user_share
    target = np.eye(_N_TOPICS)[vocab.TOPICS.index(drift.shift_to_topic)]
    after[cohort] = 0.4 * after[cohort] + 0.6 * target
    return after


def _sessions(cfg: WorldConfig, people: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    horizon = cfg.n_days * 24.0
    start = np.maximum(people["signup"], 0.0)
    days_active = (horizon - start) / 24.0
    count = rng.poisson(people["activity"] * days_active)
    users = np.repeat(np.arange(cfg.n_people), count)
    first = np.repeat(start, count)
    day = np.floor(rng.uniform(first, horizon) / 24.0)
    hours = day * 24.0 + _diurnal_hours(rng, len(users))
    hours = np.where(hours < first, rng.uniform(first, horizon), hours)
    hours = np.minimum(hours, horizon - 1e-3)
    primary = people["device"][users]
    other = rng.integers(0, len(vocab.DEVICES), len(users))
    device = np.where(rng.random(len(users)) < 0.8, primary, other)
    if cfg.drift is not None and cfg.drift.new_device_share > 0:
        after = hours >= cfg.drift.start_day * 24.0
        device = np.where(after & (rng.random(len(users)) < cfg.drift.new_device_share), len(vocab.DEVICES), device)
    scroller = rng.lognormal(0.0, 0.5, cfg.n_people)
    mean_depth = (cfg.mean_feed_length - 1) * scroller[users] / scroller.mean()
    depth = 1 + rng.geometric(1.0 / (1.0 + mean_depth)) - 1
    order = np.lexsort((users, hours))
    return {"user": users[order], "hours": hours[order], "device": device[order], "depth": depth[order]}


def _dirty_profiles(cfg: WorldConfig, people: dict[str, np.ndarray], rng: np.random.Generator) -> pd.DataFrame:
    """The observable profile table, dirtied the way real profile data is."""
    n = cfg.n_people
    codes = np.array(list(vocab.COUNTRIES))
    country = codes[people["country"]].astype(object)
    variant = rng.random(n) < cfg.country_variant_share
    for i in np.flatnonzero(variant).tolist():
        options = vocab.COUNTRY_VARIANTS[country[i]]
        country[i] = options[rng.integers(0, len(options))]
    country[rng.random(n) < 0.01] = None
    age = people["age"].astype(float).copy()
    # Missing not at random: Germans and Japanese, and privacy-minded people, leave age blank more often.
    missing_p = cfg.missing_age_share * np.where(np.isin(codes[people["country"]], ["DE", "JP"]), 3.5, 1.0)
    missing_p = np.clip(missing_p * np.where(people["privacy"], 3.0, 1.0), 0, 1)
    age[rng.random(n) < missing_p] = np.nan
    impossible = (rng.random(n) < cfg.impossible_age_share) & ~np.isnan(age)
    age[impossible] = rng.choice([0.0, -1.0, 150.0, 212.0, 999.0], size=int(impossible.sum()))
    language = np.array([vocab.COUNTRIES[c][1] for c in codes[people["country"]]], dtype=object)
    english_in_india = (codes[people["country"]] == "IN") & (rng.random(n) < 0.5)
    language[english_in_india] = "en"
    language[rng.random(n) < 0.05] = None
    device = np.array(vocab.DEVICES, dtype=object)[people["device"]]
    device[rng.random(n) < 0.03] = None
    return pd.DataFrame({"age": age, "country": country, "language": language, "device": device})


def simulate(config: WorldConfig | None = None, progress: bool = False) -> World:
    """Generate the world: people, pages, the graph, posts, sessions, and the legacy ranker's impressions."""
    cfg = config if config is not None else WorldConfig()
    _require("config", type(config).__name__, isinstance(cfg, WorldConfig), "a WorldConfig or None")
    tick = _time.perf_counter()
    root = np.random.SeedSequence(cfg.seed)
    rngs = dict(zip(("people", "pages", "friends", "follows", "posts", "text", "drift", "sessions", "dirty",
                     "rollout", "legacy", "duplicates"), (np.random.default_rng(s) for s in root.spawn(12)),
                    strict=True))
    people = _people(cfg, rngs["people"])
    pages = _pages(cfg, rngs["pages"])
    n, m = cfg.n_people, cfg.n_pages

    # ---- the graph --------------------------------------------------------------------------------------
    fu, fv, f_close = _friendships(cfg, people, rngs["friends"])
    wu, wv, w_close = _follows(cfg, people, pages, rngs["follows"])
    signup_all = np.concatenate([people["signup"], pages["created"]])
    edge_user = np.concatenate([fu, fv, wu])
    edge_target = np.concatenate([fv, fu, wv])
    edge_type = np.concatenate([np.full(2 * len(fu), "friend", dtype=object), np.full(len(wu), "follow", dtype=object)])
    closeness = np.concatenate([f_close, f_close, w_close])
    friend_created = _edge_created(np.maximum(signup_all[fu], signup_all[fv]), rngs["friends"])
    follow_created = _edge_created(np.maximum(signup_all[wu], signup_all[wv]), rngs["follows"])
    created = np.concatenate([friend_created, friend_created, follow_created])
    key = edge_user.astype(np.int64) * (n + m) + edge_target
    order = np.argsort(key)
    edges = pd.DataFrame({"user_id": edge_user[order].astype(np.int64),
                          "target_id": edge_target[order].astype(np.int64),
                          "edge_type": pd.Series(edge_type[order], dtype="str"),
                          "created_at": _to_timestamps(cfg, created[order])})

    # ---- posts ------------------------------------------------------------------------------------------
    post = _posts(cfg, people, pages, rngs["posts"])
    texts, tags = _texts(post, rngs["text"])
    topic_label = post["topic"].copy()
    relabel = rngs["posts"].random(len(topic_label)) > cfg.topic_label_accuracy
    topic_label[relabel] = rngs["posts"].integers(0, _N_TOPICS, int(relabel.sum()))
    posts = pd.DataFrame({
        "post_id": np.arange(len(post["author"]), dtype=np.int64),
        "author_id": post["author"].astype(np.int64),
        "created_at": _to_timestamps(cfg, post["hours"]),
        "topic": pd.Series(np.array(vocab.TOPICS, dtype=object)[topic_label], dtype="str"),
        "media_type": pd.Series(np.array(vocab.MEDIA_TYPES, dtype=object)[post["media"]], dtype="str"),
        "text": pd.Series(texts, dtype="str"),
        "hashtags": pd.Series(tags, dtype="str"),
    })

    # ---- accounts ---------------------------------------------------------------------------------------
    profile = _dirty_profiles(cfg, people, rngs["dirty"])
    page_country = np.array(list(vocab.COUNTRIES), dtype=object)[pages["country"]]
    users = pd.DataFrame({
        "user_id": np.arange(n + m, dtype=np.int64),
        "account_type": pd.Series(["person"] * n + ["page"] * m, dtype="str"),
        "age": np.concatenate([profile["age"].to_numpy(), np.full(m, np.nan)]),
        "country": pd.Series(np.concatenate([profile["country"].to_numpy(), page_country]), dtype="str"),
        "language": pd.Series(np.concatenate([profile["language"].to_numpy(), np.full(m, None)]), dtype="str"),
        "device": pd.Series(np.concatenate([profile["device"].to_numpy(), np.full(m, None)]), dtype="str"),
        "signup_date": _to_timestamps(cfg, signup_all),
    })

    # ---- sessions ---------------------------------------------------------------------------------------
    sess = _sessions(cfg, people, rngs["sessions"])
    sessions = pd.DataFrame({
        "session_id": np.arange(len(sess["user"]), dtype=np.int64),
        "user_id": sess["user"].astype(np.int64),
        "started_at": _to_timestamps(cfg, sess["hours"]),
        "device": pd.Series(np.array(_DEVICES, dtype=object)[sess["device"]], dtype="str"),
    })

    codes = np.array(list(vocab.COUNTRIES))
    truth = GroundTruth(
        interests=people["interests"], interests_after_drift=_drifted_interests(cfg, people["interests"],
                                                                                rngs["drift"]),
        click_bias=people["click_bias"], react_bias=people["react_bias"], passive=people["passive"],
        privacy_minded=people["privacy"], media_pref=people["media_pref"], activity=people["activity"],
        true_age=people["age"], true_country=np.concatenate([codes[people["country"]], codes[pages["country"]]]),
        post_topic=post["topic"], post_quality=post["quality"], post_clickbait=post["clickbait"],
        edge_key=key[order], edge_closeness=closeness[order], session_depth=sess["depth"].astype(np.int64),
        impressions=pd.DataFrame())
    world = World(config=cfg, users=users, posts=posts, edges=edges, sessions=sessions,
                  impressions=pd.DataFrame(), truth=truth)
    if progress:
        print(f"world: generated accounts, graph and posts in {_time.perf_counter() - tick:.1f}s", file=sys.stderr)

    # ---- impressions, logged by the legacy ranker ------------------------------------------------------
    logged = world.rollout(legacy_ranker(int(rngs["legacy"].integers(2**31))), sessions,
                           seed=int(rngs["rollout"].integers(2**31)))
    world.truth.impressions = logged.probabilities
    world.impressions = _duplicate_events(logged.impressions, cfg.duplicate_event_share, rngs["duplicates"])
    if progress:
        print(f"world: {len(world.impressions):,} impressions in {_time.perf_counter() - tick:.1f}s", file=sys.stderr)
    return world


def _duplicate_events(impressions: pd.DataFrame, share: float, rng: np.random.Generator) -> pd.DataFrame:
    """Logging retries: a share of events is recorded twice (same impression_id and content)."""
    again = impressions[rng.random(len(impressions)) < share]
    return pd.concat([impressions, again]).sort_values(["timestamp", "impression_id"], kind="stable").reset_index(
        drop=True)


# --------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m newsfeed.world", description="Generate the simulated world "
                                     "and write its tables as Parquet into OUT/<scale>-seed<seed>/.")
    parser.add_argument("--out", type=Path, default=Path("data"), help="folder to write into (default: data)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from newsfeed.data import world_folder

    try:
        config = WorldConfig.at_scale(args.scale, seed=args.seed)
    except ValueError as error:
        parser.error(str(error))
    world = simulate(config, progress=True)
    folder = world_folder(args.out, args.scale, args.seed)
    from newsfeed.data import save_world

    save_world(world, folder)
    sizes = ", ".join(f"{name} {len(getattr(world, name)):,}" for name in World.TABLES)
    print(f"wrote {folder}: {sizes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
