"""Serving traffic in the simulator: a policy meets sessions, and the world responds.

``World.rollout`` calls ``rollout`` here. For each hourly batch of sessions it runs four steps: gather each
session's **candidates** (unseen recent posts from the user's network, plus trending discovery posts), ask the
policy to **choose** (score the rows; each session shows its top ``depth``), **show** the chosen posts and draw
the user's reactions from the ground truth, and **update the counters** (impressions and reactions per post,
and what each user has seen) that the next batch's candidates carry.

The legacy ranker that logged the world's impressions lives here too: it is part of the simulation (changing it
changes the world), so the world's cache fingerprint covers it. ``newsfeed.policies`` re-exports it beside the
book's other policies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from newsfeed.validation import require
from newsfeed.world.config import _HOUR, REACTIONS
from newsfeed.world.dynamics import Dynamics, Memory
from newsfeed.world.outcomes import _device_codes, _edge_lookup, _sample, _true_probabilities

if TYPE_CHECKING:
    from newsfeed.world.core import World

Policy = Callable[[pd.DataFrame], np.ndarray]
"""A ranking policy: given one batch of candidate rows (many sessions at once), a score per row; the world
shows each session's candidates in descending score order."""


@dataclass
class Rollout:
    """What a policy's rollout produced: the observable impressions and, apart, their true probabilities (and,
    with ``Dynamics``' return rate, which sessions happened: ``visits``, their ids; ``None`` means all)."""

    impressions: pd.DataFrame
    probabilities: pd.DataFrame
    visits: np.ndarray | None = None


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
    """Each person's inbox: the posts of the accounts they befriended or follow, time-ordered.

    An inbox is assembled the first time its person is served and kept for later sessions (fan-out on read,
    cached); the serving chapters compare this with pushing posts into inboxes as they are written.
    """

    def __init__(self, world: World) -> None:
        n_people, n_accounts = world.n_people, world.n_accounts
        edges = world.edges
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


_COUNTED = ("click", "like", "hide")


class _Counters:
    """What the world remembers between batches: per post, impressions and reactions so far (the candidates'
    ``*_so_far`` columns and the discovery pool's weights), and per user, the posts already seen."""

    def __init__(self, n_posts: int) -> None:
        self.per_post = {name: np.zeros(n_posts, dtype=np.int64) for name in ("impressions", *_COUNTED)}
        self.seen: dict[int, set[int]] = {}

    def add(self, users: np.ndarray, posts: np.ndarray, reactions: Mapping[str, Any]) -> None:
        """Count impressions of ``posts`` shown to ``users`` with their ``reactions`` (0/1 columns)."""
        n_posts = len(self.per_post["impressions"])
        self.per_post["impressions"] += np.bincount(posts, minlength=n_posts)
        for name in _COUNTED:
            counts = np.asarray(reactions[name], dtype=np.int64)
            self.per_post[name] += np.bincount(posts, weights=counts, minlength=n_posts).astype(np.int64)
        # Each user's posts in one slice of the user-sorted rows: one set update per user, not per row.
        order = np.argsort(users, kind="stable")
        by_user, by_user_posts = users[order], posts[order]
        starts = np.flatnonzero(np.r_[True, by_user[1:] != by_user[:-1]]) if len(users) else np.empty(0, int)
        ends = np.r_[starts[1:], len(users)]
        for user, lo, hi in zip(by_user[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
            self.seen.setdefault(user, set()).update(by_user_posts[lo:hi].tolist())

    @classmethod
    def from_log(cls, n_posts: int, earlier_impressions: pd.DataFrame | None) -> _Counters:
        """Counters as of the end of ``earlier_impressions`` (a log); empty when there is none."""
        counters = cls(n_posts)
        if earlier_impressions is None or not len(earlier_impressions):
            return counters
        log = earlier_impressions.drop_duplicates()  # logging retries repeat a row exactly
        clash = log["impression_id"][log["impression_id"].duplicated()].unique()
        require("earlier_impressions", clash[:3].tolist(), not len(clash), "impressions whose impression_id is "
                "unique (a retried event may repeat its row exactly; renumber a rollout before appending it to a "
                "log)")
        counters.add(log["user_id"].to_numpy(), log["post_id"].to_numpy(), log)
        return counters


@dataclass
class _Sessions:
    """The sessions being served, time-sorted, as arrays."""

    ids: np.ndarray
    users: np.ndarray
    hours: np.ndarray
    devices: np.ndarray
    device_codes: np.ndarray
    depth: np.ndarray

    @classmethod
    def of(cls, world: World, sessions: pd.DataFrame) -> _Sessions:
        sessions = sessions.sort_values(["started_at", "session_id"], kind="stable").reset_index(drop=True)
        ids = sessions["session_id"].to_numpy(dtype=np.int64)
        return cls(ids=ids, users=sessions["user_id"].to_numpy(dtype=np.int64),
                   hours=world.hours(sessions["started_at"].to_numpy()),
                   devices=sessions["device"].to_numpy(dtype=object),
                   device_codes=_device_codes(sessions["device"].to_numpy(dtype=object)),
                   depth=world.truth.session_depth[ids])


def _candidates(world: World, network: _Network, batch: range, sessions: _Sessions, counters: _Counters,
                rng: np.random.Generator, memory: Memory | None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Step 1: each session's candidates, one row per (session, post): the unseen recent posts of the user's
    network and trending discovery posts (and, when shares travel, the posts friends shared), with what the
    counters say of each post so far; for each row, its session's position in ``sessions``, and who shared
    it with the user (-1: nobody)."""
    cfg = world.config
    post_hours, authors = world._post_hours, world._post_author
    per_post = counters.per_post
    t0 = sessions.hours[batch.start]
    # Trending pool for discovery: posts of the last 24 hours, weighted by engagement so far.
    lo, hi = np.searchsorted(post_hours, [t0 - 24.0, t0])
    pool = np.arange(lo, hi)
    pool_weight = (per_post["like"][pool] + 0.2 * per_post["click"][pool] + 1.0) if len(pool) else None
    discovery = (rng.choice(pool, size=(len(batch), cfg.discovery_candidates), p=pool_weight / pool_weight.sum())
                 if cfg.discovery_candidates and len(pool) else None)
    # Post ids are in time order, so a time window is a range of ids: the first post at or after each bound.
    hours = sessions.hours[batch.start:batch.stop]
    first_id = np.searchsorted(post_hours, hours - cfg.candidate_window_hours).tolist()
    end_id = np.searchsorted(post_hours, hours).tolist()
    rows_session, rows_post, rows_via = [], [], []
    travel = memory is not None and memory.dynamics.shares_travel
    for i in batch:
        user, t = int(sessions.users[i]), sessions.hours[i]
        inbox = network.inbox(user)
        ib_lo, ib_hi = np.searchsorted(inbox, [first_id[i - batch.start], end_id[i - batch.start]])
        cand = inbox[max(ib_lo, ib_hi - cfg.max_network_candidates):ib_hi]
        if discovery is not None:
            extra = discovery[i - batch.start]
            extra = extra[post_hours[extra] < t]
            cand = np.unique(np.concatenate([cand, extra]))
        via: dict[int, int] = {}
        if travel:
            shared, sharers = memory.shared_with(user, t - cfg.candidate_window_hours, t)
            in_network = set(cand.tolist())
            via = {post: sharer for post, sharer in zip(shared.tolist(), sharers.tolist(), strict=True)
                   if post not in in_network}
            cand = np.unique(np.concatenate([cand, shared]))
        user_seen = counters.seen.get(user)
        keep = [p for p in cand.tolist() if authors[p] != user and (user_seen is None or p not in user_seen)]
        rows_session.extend([i] * len(keep))
        rows_post.extend(keep)
        rows_via.extend([via.get(p, -1) for p in keep] if via else [-1] * len(keep))
    r_sess = np.asarray(rows_session, dtype=np.int64)
    r_post = np.asarray(rows_post, dtype=np.int64)
    r_via = np.asarray(rows_via, dtype=np.int64)
    r_user = sessions.users[r_sess]
    r_hours = sessions.hours[r_sess]
    is_edge, _ = _edge_lookup(world, r_user, authors[r_post])
    source = np.where(is_edge, np.where(authors[r_post] < world.n_people, "friend", "follow"),
                      np.where(r_via >= 0, "shared", "discovery"))
    return pd.DataFrame({
        "session_id": sessions.ids[r_sess],
        "user_id": r_user,
        "post_id": r_post,
        "author_id": authors[r_post],
        "source": source,
        "requested_at": world.timestamps(r_hours),
        "device": sessions.devices[r_sess],
        "post_age_hours": r_hours - post_hours[r_post],
        "impressions_so_far": per_post["impressions"][r_post],
        "clicks_so_far": per_post["click"][r_post],
        "likes_so_far": per_post["like"][r_post],
        "hides_so_far": per_post["hide"][r_post],
    }), r_sess, r_via


def _choose(policy: Policy, candidates: pd.DataFrame, r_sess: np.ndarray,
            depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: the policy scores every row; each session shows its ``depth`` best. Returns the chosen rows and
    their positions (1 is the top)."""
    scores = np.asarray(policy(candidates), dtype=float)
    require("policy", f"{scores.shape} scores for {len(candidates)} candidates",
            scores.shape == (len(candidates),) and bool(np.all(np.isfinite(scores))),
            "a callable returning one finite score per candidate row")
    order = np.lexsort((-scores, r_sess))
    r_sess_sorted = r_sess[order]
    group_start = np.r_[0, np.flatnonzero(r_sess_sorted[1:] != r_sess_sorted[:-1]) + 1]
    rank = np.arange(len(order)) - np.repeat(group_start, np.diff(np.r_[group_start, len(order)]))
    chosen = rank < depth[r_sess_sorted]
    return order[chosen], rank[chosen] + 1


def _show(world: World, sessions: _Sessions, row_session: np.ndarray, posts: np.ndarray, position: np.ndarray,
          rng: np.random.Generator, memory: Memory | None,
          via: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Step 3: show the chosen posts (4 s of scrolling per position) and draw the user's reactions from the
    ground truth. Returns the shown rows' hours and true probabilities, and the sampled outcomes. With
    ``memory`` (``Dynamics`` on), a shared post carries its sharer's closeness, a treated user the product
    change's effects, and a click may be regretted (a bounce: a few seconds' dwell), recorded apart as
    ``regret``."""
    hours = sessions.hours[row_session] + (position - 1) * 4.0 / _HOUR
    devices = sessions.device_codes[row_session]
    users = sessions.users[row_session]
    closeness_via, shift = None, None
    if memory is not None:
        shared = via >= 0
        if shared.any():
            _, closeness = _edge_lookup(world, users, np.where(shared, via, 0))
            closeness_via = np.where(shared, memory.dynamics.shared_closeness * closeness, 0.0)
        shift = memory.logit_shift(users, hours)
    probs = _true_probabilities(world, users, posts, position.astype(float), hours, devices, closeness_via, shift)
    outcomes = _sample(probs, rng)
    shown = {"hours": hours, **{name: values for name, values in probs.items() if not name.startswith("_")}}
    if memory is not None:
        regret = memory.regrets(outcomes["click"], world.truth.post_quality[posts], world.truth.post_clickbait[posts])
        outcomes["dwell_seconds"] = np.where(regret, np.round(memory.rng.uniform(1.0, 6.0, len(regret)), 1),
                                             outcomes["dwell_seconds"])
        shown["regret"] = regret.astype(np.int8)
    return shown, outcomes


def rollout(world: World, policy: Policy, sessions: pd.DataFrame, rng: np.random.Generator,
            earlier_impressions: pd.DataFrame | None, dynamics: Dynamics | None = None) -> Rollout:
    """Serve ``sessions`` with ``policy`` in hourly batches: candidates, choose, show, update the counters
    (and, with ``dynamics``, what users remember: ``world.dynamics``)."""
    if "network" not in world._cache:
        world._cache["network"] = _Network(world)
    network: _Network = world._cache["network"]
    counters = _Counters.from_log(len(world._post_hours), earlier_impressions)
    served = _Sessions.of(world, sessions)
    batch_starts = _batch_starts(served.hours, served.users)
    batch_ends = np.r_[batch_starts[1:], len(served.ids)] if len(served.ids) else batch_starts
    memory = Memory.start(world, dynamics) if dynamics is not None and dynamics.any else None

    shown_parts: list[dict[str, np.ndarray]] = []
    for start, end in zip(batch_starts.tolist(), batch_ends.tolist(), strict=True):
        candidates, r_sess, r_via = _candidates(world, network, range(start, end), served, counters, rng, memory)
        if memory is not None and memory.dynamics.return_rate:
            happens = memory.visit(served.ids[start:end], served.users[start:end])[r_sess - start]
            candidates, r_sess, r_via = candidates[happens].reset_index(drop=True), r_sess[happens], r_via[happens]
        if not len(candidates):
            continue
        take, position = _choose(policy, candidates, r_sess, served.depth)
        rows, posts = r_sess[take], candidates["post_id"].to_numpy()[take]
        shown, outcomes = _show(world, served, rows, posts, position, rng, memory, r_via[take])
        counters.add(served.users[rows], posts, outcomes)
        if memory is not None:
            memory.remember(served.ids[rows], served.users[rows], posts, shown["hours"],
                            {**outcomes, "regret": shown.get("regret", 0)})
        shown.update({"row_session": rows, "post_id": posts, "position": position,
                      "source": candidates["source"].to_numpy()[take]})
        shown.update(outcomes)
        shown_parts.append(shown)
    logged = _logged(world, served, shown_parts)
    if memory is not None and memory.dynamics.return_rate:
        logged.visits = np.sort(np.concatenate(memory.visits)) if memory.visits else np.empty(0, dtype=np.int64)
    return logged


def _logged(world: World, sessions: _Sessions, shown_parts: list[dict[str, np.ndarray]]) -> Rollout:
    """The impressions as the log records them, numbered from 0 in time order, and apart their true
    probabilities."""
    if not shown_parts:
        empty = pd.DataFrame(columns=list(_IMPRESSION_COLUMNS))
        return Rollout(empty, pd.DataFrame(columns=["impression_id", *(f"p_{r}" for r in REACTIONS)]))
    merged = {k: np.concatenate([part[k] for part in shown_parts]) for k in shown_parts[0]}
    rows = merged["row_session"]
    impressions = pd.DataFrame({
        "impression_id": np.arange(len(rows), dtype=np.int64),
        "session_id": sessions.ids[rows],
        "user_id": sessions.users[rows],
        "post_id": merged["post_id"],
        "position": merged["position"].astype(np.int64),
        "timestamp": world.timestamps(merged["hours"]),
        "device": pd.Series(sessions.devices[rows], dtype="str"),
        "source": pd.Series(merged["source"], dtype="str"),
        **{r: merged[r].astype(np.int8) for r in REACTIONS},
        "dwell_seconds": merged["dwell_seconds"],
    })
    truth = (*(f"p_{r}" for r in REACTIONS), "expected_dwell", *(["regret"] if "regret" in merged else []))
    probabilities = pd.DataFrame({"impression_id": impressions["impression_id"], **{c: merged[c] for c in truth}})
    return Rollout(impressions, probabilities)


_IMPRESSION_COLUMNS = ("impression_id", "session_id", "user_id", "post_id", "position", "timestamp", "device",
                       "source", *REACTIONS, "dwell_seconds")
