"""The World: the observable tables, the ground truth, and the questions only a simulator can answer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from newsfeed import vocabulary as vocab
from newsfeed.validation import require, require_columns, require_ids, require_known
from newsfeed.world.config import WorldConfig, to_timestamps
from newsfeed.world.dynamics import Dynamics
from newsfeed.world.outcomes import GroundTruth, _device_codes, _public, _sample, _true_probabilities, hidden_terms
from newsfeed.world.rollout import Policy, Rollout, rollout


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
        given = np.atleast_1d(np.asarray(times))
        if np.issubdtype(given.dtype, np.datetime64):  # the simulator's own arrays: no parsing
            since = given.astype("datetime64[ns]") - np.datetime64(self.config.start_time, "ns")
            return since / np.timedelta64(1, "h")
        values = pd.Series(given.astype(object))
        try:
            stamps = pd.to_datetime(values)
        except (ValueError, TypeError):
            require("time", values.head(3).tolist(), False, "timestamps (Timestamps or strings such as "
                    "'2026-01-05 08:00')")
        return ((stamps - self.config.start_time) / pd.Timedelta(hours=1)).to_numpy(dtype=float)

    def timestamps(self, hours: np.ndarray) -> pd.Series:
        return to_timestamps(self.config, hours)

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
        return pd.DataFrame(_sample(probs, np.random.default_rng(seed)))

    def hidden_variables(self, user_id: Any, post_id: Any, time: Any, device: Any = None) -> pd.DataFrame:
        """The latent terms behind the true probabilities of each (user, post, time) row, one column each
        (``outcomes.hidden_terms``): what the oracle knows and no model sees. Arguments as ``probabilities``."""
        users, posts, _, hours, devices = self._validate_query(user_id, post_id, 1, time, device)
        terms = hidden_terms(self, users, posts, hours, devices)
        return pd.DataFrame({name: np.asarray(values, dtype=float) for name, values in terms.items()})

    def true_topics(self, post_id: Any) -> np.ndarray:
        """Each post's true topic, by name. The ``topic`` column of ``posts`` is a tagger's label, wrong for
        about one post in ten; only the simulator knows the truth."""
        posts = np.asarray(post_id)
        posts = posts.astype(np.int64) if posts.size == 0 else posts  # no posts, no topics
        require_ids("post_id", posts, len(self.posts), "a post")
        return np.array(vocab.TOPICS, dtype=object)[self.truth.post_topic[posts]]

    def logged_probabilities(self, impression_id: Any) -> pd.DataFrame:
        """The true probabilities behind logged impressions (``p_click`` ... ``p_hide``, ``expected_dwell``):
        each at the position, time and device it was shown, in the order of ``impression_id`` and indexed
        like it when it is a Series. Only a simulator can answer; chapters use it as the oracle."""
        ids = impression_id if isinstance(impression_id, pd.Series) else pd.Series(np.asarray(impression_id))
        if "logged" not in self._cache:
            self._cache["logged"] = self.truth.impressions.set_index("impression_id")
        logged = self._cache["logged"]
        require_known("impression_id", ids, logged.index, "the id of an impression this world logged")
        return logged.loc[ids.to_numpy()].set_axis(ids.index)

    def _validate_query(self, user_id: Any, post_id: Any, position: Any, time: Any,
                        device: Any) -> tuple[np.ndarray, ...]:
        users, posts, positions = (np.asarray(x) for x in (user_id, post_id, position))
        require_ids("user_id", users, self.n_people, "a person")
        require_ids("post_id", posts, len(self.posts), "a post")
        require("position", np.ravel(positions)[:3].tolist(),
                 np.issubdtype(positions.dtype, np.number) and bool(np.all(positions >= 1)),
                 "integers >= 1 (1 is the top of the feed)")
        hours = self.hours(np.ravel(np.asarray(time))).reshape(np.shape(time))
        devices = self._primary_devices(users) if device is None else _device_codes(device)
        users, posts, positions, hours, devices = (np.ravel(x) for x in np.broadcast_arrays(
            users, posts, positions, hours, devices))
        early = hours < self._post_hours[posts]
        if early.any():
            require("time", self.timestamps(hours[early][:3]).astype(str).tolist(), False,
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
                earlier_impressions: pd.DataFrame | None = None, dynamics: Dynamics | None = None) -> Rollout:
        """Serve ``sessions`` with ``policy`` and let the world respond.

        For each session the world generates candidates (unseen posts of the last
        ``candidate_window_hours`` from friends and followed pages, plus trending ``discovery`` posts), asks
        the policy for scores in hourly batches, shows the top ``session depth`` posts and samples outcomes
        from the ground truth. ``earlier_impressions`` (a log of what was shown before) sets what each user has
        already seen and the posts' engagement counters; by default it is empty. Exact repeats of a row
        (logging retries) count once; two different rows with one ``impression_id`` are refused, since a
        rollout numbers its impressions from 0 and appending one to a log unrenumbered would otherwise lose
        rows silently. ``sessions`` must be sessions of this world (rows of ``World.sessions``, or a subset).
        ``dynamics`` switches on what users carry between sessions (``world.dynamics``: shares that travel,
        a product change for some users, a return rate); without it, the world the chapters before the
        experiments chapter read.
        """
        require_columns("sessions", sessions, ["session_id", "user_id", "started_at", "device"])
        require_ids("sessions.user_id", sessions["user_id"].to_numpy(), self.n_people, "a person")
        require_ids("sessions.session_id", sessions["session_id"].to_numpy(), len(self.truth.session_depth),
                    "a session of this world")
        if earlier_impressions is not None:
            require_columns("earlier_impressions", earlier_impressions,
                            ["impression_id", "user_id", "post_id", "click", "like", "hide"])
        if dynamics is not None:
            require("dynamics", type(dynamics).__name__, isinstance(dynamics, Dynamics), "None or a Dynamics")
        return rollout(self, policy, sessions, np.random.default_rng(seed), earlier_impressions, dynamics)

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
