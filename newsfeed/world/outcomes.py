"""The outcome model: the true probability of each reaction for any (user, post, position, time), and draws.

Nothing here is observable to a real company: ``GroundTruth`` holds the latent state the probabilities come
from, and only the simulator (and the chapters' oracle) may read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from newsfeed import vocabulary as vocab
from newsfeed.validation import require
from newsfeed.world.config import DEVICES, REACTIONS

if TYPE_CHECKING:
    from newsfeed.world.core import World

_N_TOPICS = len(vocab.TOPICS)

# Coefficients of the outcome model: logit of P(reaction | the user examined the post). Terms, in order:
# intercept, topic affinity, closeness to the author, freshness, quality - 0.5, clickbait, media preference.
_LOGIT = {
    "click": (-2.3, 0.9, 0.8, 0.6, 1.5, 2.2, 1.0),
    "like": (-3.2, 0.8, 2.2, 0.4, 3.5, -1.6, 0.6),
    "comment": (-6.0, 0.5, 3.2, 0.5, 1.2, -0.5, 0.3),
    "share": (-6.4, 0.9, 0.6, 0.6, 4.0, -0.3, 0.4),
    "hide": (-5.6, -0.7, -1.8, 0.0, -1.5, 2.8, -0.4),
}
# Extra log-odds, times ``WorldConfig.harmful_appeal``, of each reaction to a harmful post: outrage is clicked,
# argued with and shared, and some readers hide it.
_HARM_SHIFT = {"click": 1.0, "like": 0.0, "comment": 1.0, "share": 1.0, "hide": 0.5}
# How much being a passive user lowers each reaction's logit (they read, and rarely react).
_PASSIVE_SHIFT = {"click": -0.3, "like": -2.2, "comment": -2.8, "share": -1.8, "hide": -0.5}
# How much being privacy-minded lowers the public reactions' log-odds.
_PRIVACY_SHIFT = {"like": 0.7, "comment": 1.4, "share": 1.4}
# Extra log-odds of video on each device (ios, android, web, tablet): video plays better on phones.
_VIDEO_BY_DEVICE = np.array([0.3, 0.2, -0.5, 0.4])
# Mean log dwell seconds by media type (text, image, video, link), for an examined post.
_DWELL_BY_MEDIA = np.array([1.3, 1.1, 2.3, 1.6])

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
    # Chapter 11's mechanisms, None when the config leaves them out (``WorldConfig.harmful_share``, ``spam_posts``)
    post_harmful: np.ndarray | None = None  # (n_posts,) bool: harmful or misleading
    post_spam: np.ndarray | None = None  # (n_posts,) the spam template a post copies, -1 for none

    _ARRAYS = ("interests", "interests_after_drift", "click_bias", "react_bias", "passive", "privacy_minded",
               "media_pref", "activity", "true_age", "true_country", "post_topic", "post_quality",
               "post_clickbait", "edge_key", "edge_closeness", "session_depth")
    _OPTIONAL = ("post_harmful", "post_spam")

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in (*self._ARRAYS, *self._OPTIONAL)}
        np.savez_compressed(folder / "latent.npz", **{name: a for name, a in arrays.items() if a is not None})
        self.impressions.to_parquet(folder / "impression_probabilities.parquet", index=False)

    @classmethod
    def load(cls, folder: Path) -> GroundTruth:
        with np.load(folder / "latent.npz", allow_pickle=False) as arrays:
            values = {name: arrays[name] for name in (*cls._ARRAYS, *cls._OPTIONAL) if name in arrays}
        return cls(**values, impressions=pd.read_parquet(folder / "impression_probabilities.parquet"))



def _device_codes(devices: Any) -> np.ndarray:
    """Each device name's index in ``DEVICES``."""
    values = np.atleast_1d(np.asarray(devices, dtype=object))
    seen, distinct = pd.factorize(values.ravel(), use_na_sentinel=False)  # a hash per row, a lookup per name
    lookup = {name: code for code, name in enumerate(DEVICES)}
    bad = [name for name in distinct.tolist() if name not in lookup]
    require("device", sorted(map(str, bad))[:3], not bad, f"one of {', '.join(DEVICES)}")
    codes = np.array([lookup[name] for name in distinct.tolist()], dtype=np.int64)
    return codes[seen].reshape(values.shape)


def _edge_lookup(world: World, users: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_edge, closeness) for each (user, target) pair."""
    truth = world.truth
    keys = users.astype(np.int64) * world.n_accounts + targets.astype(np.int64)
    where = np.searchsorted(truth.edge_key, keys)
    where = np.minimum(where, len(truth.edge_key) - 1)
    found = truth.edge_key[where] == keys
    return found, np.where(found, truth.edge_closeness[where], 0.0)


def hidden_terms(world: World, users: np.ndarray, posts: np.ndarray, hours: np.ndarray,
                 devices: np.ndarray) -> dict[str, np.ndarray]:
    """The latent terms of the outcome model for each (user, post, time, device) row: the pair's true topic
    affinity, closeness to the author, freshness, the post's quality (centred) and clickbait, the media
    preference, and the user's personal traits. No company observes them; a model given some of them as
    features shows how much of its gap to the oracle is the data's fault."""
    cfg, truth = world.config, world.truth
    topic = truth.post_topic[posts]
    interest = truth.interests[users, topic]
    if cfg.drift is not None:
        after = hours >= cfg.drift.start_day * 24.0
        interest = np.where(after, truth.interests_after_drift[users, topic], interest)
    _, closeness = _edge_lookup(world, users, world._post_author[posts])
    age = np.maximum(hours - world._post_hours[posts], 0.0)
    media = world._post_media[posts]
    return {
        "affinity": np.sqrt(_N_TOPICS * interest) - 1.0,
        "closeness": closeness,
        "freshness": np.exp2(-age / cfg.freshness_half_life_hours),
        "quality": truth.post_quality[posts] - 0.5,
        "clickbait": truth.post_clickbait[posts],
        "media_preference": truth.media_pref[users, media] + np.where(media == 2, _VIDEO_BY_DEVICE[devices], 0.0),
        "click_bias": truth.click_bias[users],
        "react_bias": truth.react_bias[users],
        "passive": truth.passive[users],
        "privacy_minded": truth.privacy_minded[users],
    }


def _true_probabilities(world: World, users: np.ndarray, posts: np.ndarray, positions: np.ndarray,
                        hours: np.ndarray, devices: np.ndarray, closeness_via: np.ndarray | None = None,
                        shift: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Each reaction's probability (``p_<reaction>``), the expected dwell, and for drawing outcomes the chance
    of being examined (``_examined``) and the mean log reading time (``_mu``), one array entry per row.

    ``closeness_via`` (a closeness per row, for a post a friend shared) and ``shift`` (extra log-odds per
    reaction, the novelty response) are ``world.dynamics``' mechanisms; without them, the world's own model."""
    cfg, truth = world.config, world.truth
    hidden = hidden_terms(world, users, posts, hours, devices)
    if closeness_via is not None:
        hidden["closeness"] = np.maximum(hidden["closeness"], closeness_via)
    affinity, closeness, fresh = hidden["affinity"], hidden["closeness"], hidden["freshness"]
    quality, clickbait, media_pref = hidden["quality"], hidden["clickbait"], hidden["media_preference"]
    media = world._post_media[posts]
    passive = truth.passive[users]
    examined = positions ** (-cfg.position_bias)
    harm = None if truth.post_harmful is None else cfg.harmful_appeal * truth.post_harmful[posts]

    out: dict[str, np.ndarray] = {}
    terms = np.stack([np.ones_like(affinity), affinity, closeness, fresh, quality, clickbait, media_pref])
    for reaction in REACTIONS:
        logit = np.asarray(_LOGIT[reaction]) @ terms + np.where(passive, _PASSIVE_SHIFT[reaction], 0.0)
        if reaction == "click":
            logit = logit + truth.click_bias[users]
        elif reaction in ("like", "comment", "share"):
            # Privacy-minded people react less in public: fewer likes, far fewer comments and shares.
            logit = logit + truth.react_bias[users] - _PRIVACY_SHIFT[reaction] * truth.privacy_minded[users]
        if shift and reaction in shift:
            logit = logit + shift[reaction]
        if harm is not None:
            logit = logit + _HARM_SHIFT[reaction] * harm
        out[f"p_{reaction}"] = examined / (1.0 + np.exp(-logit))
    # Dwell: a short scroll past when not examined; log-normal reading time when examined (longer if clicked).
    mu = _DWELL_BY_MEDIA[media] + 0.35 * affinity + 1.0 * quality + 0.3 * passive
    read = np.exp(mu + 0.5 * 0.8**2)
    p_click_given_exam = out["p_click"] / examined
    out["expected_dwell"] = (1 - examined) * 0.9 + examined * read * (1 + p_click_given_exam * (np.exp(1.2) - 1))
    out["_examined"] = examined
    out["_mu"] = mu
    return out


def _sample(probs: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw outcomes: examined ~ position bias; each reaction ~ its conditional probability if examined."""
    n = len(probs["_examined"])
    examined = rng.random(n) < probs["_examined"]
    out = {}
    for reaction in REACTIONS:
        conditional = probs[f"p_{reaction}"] / probs["_examined"]
        out[reaction] = (examined & (rng.random(n) < conditional)).astype(np.int8)
    reading = np.exp(probs["_mu"] + 1.2 * out["click"] + 0.8 * rng.standard_normal(n))
    scroll = rng.uniform(0.3, 1.5, n)
    out["dwell_seconds"] = np.round(np.where(examined, reading, scroll), 1)
    return out


def _public(probs: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({name: probs[name] for name in (*(f"p_{r}" for r in REACTIONS), "expected_dwell")})
