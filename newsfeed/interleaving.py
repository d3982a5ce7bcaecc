"""Interleaving: compare two rankers inside one feed, where each user sees both.

An A/B test shows each user one ranker and compares users; most of what it measures is how users differ. Team-
draft interleaving shows every user one list built from both rankers: in each round a fair coin says which ranker
picks first, and each picks its best post not yet picked, so each post on the screen belongs to one ranker's team.
A session votes for the ranker whose posts got more clicks; a user's preference is their sessions' net votes. The
comparison is within each user, which is why it needs far fewer users than an A/B test to tell two rankers apart,
and why it says which ranker users prefer, not by how much a business metric moves (Chapelle et al., 2012).

- ``team_draft``: the interleaved policy, recording each slot's team;
- ``preferences``: each user's net votes from a rollout's clicks;
- ``users_needed``: users for a given power, from a per-user statistic's mean and spread;
- ``compare``: interleaving against an A/B test of the same pair, each with the users it needs (kept beside
  the models: three rollouts of a week with the network scoring every candidate take most of a minute).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from newsfeed import experiments
from newsfeed.cache import kept_json, rows_digest
from newsfeed.experiments import _z_total
from newsfeed.validation import is_number, require, require_float, require_int
from newsfeed.world import Policy, World, fingerprint


def team_draft(first: Policy, second: Policy, top: int = 10, seed: int = 0,
               record: list[pd.DataFrame] | None = None) -> Policy:
    """A policy that fills each session's first ``top`` slots with the team-draft interleaving of
    ``first``'s and ``second``'s rankings (later slots in ``first``'s order). ``record``, a list,
    receives a frame per batch: each interleaved slot's ``session_id``, ``post_id`` and ``team``
    (0 for ``first``, 1 for ``second``)."""
    require("first", first, callable(first), "a callable that scores candidate rows")
    require("second", second, callable(second), "a callable that scores candidate rows")
    require_int("top", top, lo=1)
    require("record", record, record is None or isinstance(record, list), "None or a list")
    rng = np.random.default_rng(seed)

    def score(candidates: pd.DataFrame) -> np.ndarray:
        rankings = [np.asarray(policy(candidates), dtype=float) for policy in (first, second)]
        scores = rankings[0].copy()
        ceiling = scores.max() + 1.0 if len(scores) else 0.0
        slots: list[tuple[int, int, int]] = []  # (row, team, slot)
        for rows in candidates.groupby("session_id", sort=False).indices.values():
            orders = [rows[np.argsort(-ranking[rows], kind="stable")] for ranking in rankings]
            picked: set[int] = set()
            cursors, full = [0, 0], min(top, len(rows))
            while len(picked) < full:
                for team in rng.permutation(2):  # the coin: who picks first this round
                    order = orders[team]
                    while order[cursors[team]] in picked:  # its best post not yet picked
                        cursors[team] += 1
                    slots.append((order[cursors[team]], int(team), len(picked)))
                    picked.add(order[cursors[team]])
                    if len(picked) == full:
                        break
        if slots:
            row, team, slot = (np.array(column) for column in zip(*slots, strict=True))
            scores[row] = ceiling + top - slot  # above every later candidate, in drafted order
            if record is not None:
                ids = candidates[["session_id", "post_id"]].to_numpy()[row]
                record.append(pd.DataFrame({"session_id": ids[:, 0], "post_id": ids[:, 1],
                                            "team": team}))
        return scores

    return score


def preferences(impressions: pd.DataFrame, teams: pd.DataFrame, reward: str = "click") -> pd.Series:
    """Each user's preference for the second ranker: over their sessions, the share won by the
    second team minus the share won by the first (the team whose posts got more of ``reward``
    wins a session; a tie wins nothing), from a rollout's ``impressions`` and ``team_draft``'s
    record (``teams``)."""
    require("reward", reward, reward in impressions.columns, "a column of impressions")
    shown = impressions[["session_id", "user_id", "post_id", reward]].merge(
        teams, on=["session_id", "post_id"])
    won = shown[reward].to_numpy()
    credit = shown.assign(first=won * (shown["team"] == 0), second=won * (shown["team"] == 1))
    sessions = credit.groupby(["user_id", "session_id"])[["first", "second"]].sum()
    vote = np.sign(sessions["second"] - sessions["first"])
    return vote.groupby(level="user_id").mean().rename("preference")


def users_needed(mean: float, std: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users a one-sample test of a per-user statistic with this ``mean`` and ``std`` needs to find
    the mean non-zero with probability ``power`` at two-sided level ``alpha``, ((z_{1-alpha/2} +
    z_power) std / mean)^2 rounded up: the one-sample twin of ``experiments.sample_size_per_arm``."""
    require("mean", mean, is_number(mean) and mean != 0, "a finite non-zero number")
    require_float("std", std, lo=0.0)
    for name, value in (("alpha", alpha), ("power", power)):
        require(name, value, is_number(value) and 0 < value < 1, "a number strictly between 0 and 1")
    return math.ceil((_z_total(alpha, power) * std / mean) ** 2)


def compare(world: World, first: Policy, second: Policy, sessions: pd.DataFrame, history: pd.DataFrame,
            top: int = 10, seed: int = 0, ab: experiments.ABResult | None = None,
            folder: str | Path | None = None, identity: bytes = b"") -> dict[str, float]:
    """Team-draft interleaving of ``first`` and ``second`` over ``sessions`` (after the log ``history``)
    against an A/B test of the same pair (``ab``; run now when not given): the mean preference for the
    second and the users interleaving needs; per metric (clicks, engagement) the A/B test's relative lift
    and the users it needs, both arms, at 80% power.

    With ``folder``, kept there and read back when the same code compared the same pair on the same
    world and sessions; a cache cannot see inside a policy, so ``identity`` must say what makes the two
    (their models' weights, their settings)."""
    def run() -> dict[str, float]:
        result = ab if ab is not None else experiments.run_ab_test(
            world, control=first, treatment=second, sessions=sessions, seed=seed, earlier_impressions=history)
        teams: list[pd.DataFrame] = []
        mixed = world.rollout(team_draft(first, second, top, seed, teams), sessions, seed=seed,
                              earlier_impressions=history)
        preference = preferences(mixed.impressions, pd.concat(teams))
        row = {"interleaving: preference for the second": float(preference.mean()),
               "interleaving: users needed": users_needed(preference.mean(), preference.std())}
        control = result.per_user[result.per_user["arm"] == experiments.CONTROL]
        for metric in ("clicks", "engagement"):
            lift = result.compare([metric]).loc[metric]
            row[f"A/B: lift in {metric}"] = float(lift["rel_lift"])
            row[f"A/B: users needed, {metric}"] = 2 * experiments.sample_size_per_arm(
                control[metric].mean(), control[metric].std(), lift["rel_lift"])
        return row

    if folder is None:
        return run()
    from newsfeed.models.shipped import _source_files  # the features and models a served network runs

    key = [fingerprint.output_digest(world).encode(), rows_digest(sessions, history), identity,
           repr((top, seed, ab is None)).encode()]
    return kept_json(folder, "interleaving", key, [*_source_files(), *experiments.study_sources(__file__)], run)
