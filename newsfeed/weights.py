"""Weights chosen by long-term value: the engagement score's weights against whether users come back.

Chapter 2 chose the score's weights (a share is worth twenty clicks, a hide costs as much as a share earns) by
reasoning about what each reaction means. The world can check them against the long run: with its return rate
on (``world.Dynamics``: a user who regrets clicks or hides posts visits less), each set of weights ranks by
the world's own probabilities (the oracle of that score, so that only the weights differ) for weeks, and every
set is judged by the same yardsticks: chapter 2's score in the first week (what a short test reads) and the
visits and score of the last week (what the weights did to the users who were to come back).

- ``served_weights``: one rollout of a set of weights, read by week per assigned user;
- ``weights_frontier``: every set of a grid, over several rollouts, kept beside the models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from newsfeed import experiments, longterm, policies
from newsfeed.cache import kept_json
from newsfeed.metrics import ENGAGEMENT_WEIGHTS, engagement_score
from newsfeed.validation import is_number, require, require_int
from newsfeed.world import REACTIONS, Dynamics, World, fingerprint

#: The world the weights are judged in: regretted clicks and a return rate that follows satisfaction, no
#: product change (no novelty) and shares that stay where they were made.
RETURNING = Dynamics(return_rate=True)
#: The grid: chapter 2's weights and changes a team would argue for, each a full set of weights.
SETTINGS: dict[str, dict[str, float]] = {
    "chapter 2": dict(ENGAGEMENT_WEIGHTS),
    "clicks only": {"click": 1.0, "like": 0.0, "comment": 0.0, "share": 0.0, "hide": 0.0},
    "clicks x10": {**ENGAGEMENT_WEIGHTS, "click": 10.0},
    "no hide penalty": {**ENGAGEMENT_WEIGHTS, "hide": 0.0},
    "hide x3": {**ENGAGEMENT_WEIGHTS, "hide": -60.0},
    "no clicks": {**ENGAGEMENT_WEIGHTS, "click": 0.0},
    "shares x3": {**ENGAGEMENT_WEIGHTS, "share": 60.0},
    "likes and comments x2": {**ENGAGEMENT_WEIGHTS, "like": 10.0, "comment": 20.0},
}


def _check(weights: Mapping[str, float]) -> None:
    require("weights", weights, isinstance(weights, Mapping) and set(weights) == set(REACTIONS)
            and all(is_number(value) for value in weights.values()),
            f"a number for each reaction: {', '.join(REACTIONS)}")


def served_weights(world: World, weights: Mapping[str, float], start_day: int, days: int,
                   seed: int = 0) -> dict[str, float]:
    """One rollout of ``days`` from ``start_day`` ranked by the oracle of the score with ``weights``, in the
    ``RETURNING`` world: per assigned user, chapter 2's score (expected: the sum of the reactions' true
    chances), the visits and the bounces of the first and of the last week (the last ``min(7, days)`` days)."""
    _check(weights)
    require_int("days", days, lo=2)
    start, earlier, sessions = experiments.test_window(world, start_day, days)
    policy = policies.oracle_policy(world, lambda p: engagement_score(p, weights, prefix="p_"))
    rollout = world.rollout(policy, sessions, seed=seed, earlier_impressions=earlier, dynamics=RETURNING)
    table = longterm.by_user_and_day(rollout, start, days, world.n_people)
    # The same arrays with each reaction's true chance in place of its draw: the expected score, which
    # needs far fewer rollouts to compare settings than the score of the reactions drawn.
    chances = rollout.impressions.assign(**{r: rollout.probabilities[f"p_{r}"].to_numpy() for r in REACTIONS})
    expected = longterm.by_user_and_day(dataclasses.replace(rollout, impressions=chances), start, days,
                                        world.n_people)["engagement"]
    assigned = np.isin(np.arange(world.n_people), sessions["user_id"].to_numpy())
    week = min(7, days)
    row = {}
    for label, span in (("first week", slice(0, week)), ("last week", slice(days - week, days))):
        row[f"{label} engagement"] = float(expected[assigned, span].sum(axis=1).mean())
        for metric in ("visits", "bounces"):
            row[f"{label} {metric}"] = float(table[metric][assigned, span].sum(axis=1).mean())
    return row


def weights_frontier(world: World, settings: Mapping[str, Mapping[str, float]] | None = None, start_day: int = 7,
                     days: int = 21, seeds: Iterable[int] = (0, 1), folder: str | Path | None = None) -> pd.DataFrame:
    """``served_weights`` of each of ``settings`` (``SETTINGS`` by default) with each rollout seed of
    ``seeds`` (the same seeds for every setting, so settings compare on the same draws): a row per (setting,
    seed), with its weights. With ``folder``, kept there and read back when the same code served the same
    settings on the same world."""
    settings = dict(SETTINGS if settings is None else settings)
    require("settings", settings, len(settings) > 0, "one or more named sets of weights")
    for weights in settings.values():
        _check(weights)
    seeds = [int(seed) for seed in seeds]
    require("seeds", seeds, len(seeds) > 0, "one or more rollout seeds")

    def run() -> list[dict[str, Any]]:
        return [{"setting": name, "seed": seed, **{f"w_{r}": float(weights[r]) for r in REACTIONS},
                 **served_weights(world, weights, start_day, days, seed)}
                for name, weights in settings.items() for seed in seeds]

    if folder is None:
        return pd.DataFrame(run())
    identity = [fingerprint.output_digest(world).encode(), repr((settings, start_day, days, seeds)).encode()]
    return pd.DataFrame(kept_json(folder, "weights", identity, experiments.study_sources(__file__), run))
