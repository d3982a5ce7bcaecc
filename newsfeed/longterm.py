"""Effects that take weeks (chapter 10): a launch's novelty that fades, and visits that follow satisfaction.

The launch is a redesigned feed: a ranker tuned towards clicks (``objective_launch``) behind a new look. With
``world.Dynamics`` on, the new look draws curious clicks that fade (``novelty``), and a user who regrets
clicks or hides posts comes back less often (``return_rate``): a test that reads its first week measures
something that will not last. ``served`` runs one rollout with any set of users treated: everyone or no one
for the truth (``truth_by_day``), a random half for a long-running holdout (``holdouts``), and a family of
redesigns for the question a team asks next, which first-week metric foretells the third week
(``launch_family``).

Every metric here is **per assigned user**: the users who would visit in the period (they have sessions in
``World.sessions``, the visits they would make), counted whether or not they came back. Counting only the
users who came would hide the launch's cost in visits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from newsfeed import experiments, policies
from newsfeed.cache import kept_json
from newsfeed.metrics import engagement_score
from newsfeed.validation import is_number, require, require_int
from newsfeed.world import Dynamics, Rollout, World, fingerprint

#: Clicks whose dwell is shorter than this many seconds count as bounces: the reader came straight back.
BOUNCE_SECONDS = 10.0
METRICS = ("clicks", "expected clicks", "visits", "engagement", "bounces")


def objective_launch(world: World, click_weight: float) -> policies.Policy:
    """The oracle of chapter 2's engagement score with ``click_weight`` times the chance of a click added to
    the score's own weight of 1: a ranker tuned towards clicks (0 is the engagement ranker itself, the
    oracle every rollout of this module serves to the users who do not get the launch)."""
    def objective(p: pd.DataFrame) -> Any:
        return engagement_score(p, prefix="p_") + click_weight * p["p_click"]

    return policies.oracle_policy(world, objective)


def by_user_and_day(rollout: Rollout, start: pd.Timestamp, days: int, n_people: int) -> dict[str, np.ndarray]:
    """Each metric as a (person, day) array: clicks, expected clicks (the sum of the true chances: what the
    clicks measure without the luck of the draw, which only a simulator knows), visits (sessions that
    happened), weighted engagement and bounces (clicks read for less than ``BOUNCE_SECONDS``)."""
    impressions = rollout.impressions
    opened = impressions.groupby("session_id")["timestamp"].transform("min")  # a session counts on the day it began
    day = ((opened - start) // pd.Timedelta(days=1)).to_numpy()
    user = impressions["user_id"].to_numpy()
    bounce = (impressions["click"] == 1) & (impressions["dwell_seconds"] < BOUNCE_SECONDS)
    out = {}
    for name, values in (("clicks", impressions["click"]), ("expected clicks", rollout.probabilities["p_click"]),
                         ("engagement", engagement_score(impressions)), ("bounces", bounce)):
        table = np.zeros((n_people, days))
        np.add.at(table, (user, day), np.asarray(values, dtype=float))
        out[name] = table
    first = ~impressions["session_id"].duplicated().to_numpy()
    visits = np.zeros((n_people, days))
    np.add.at(visits, (user[first], day[first]), 1.0)
    out["visits"] = visits
    return out


def served(world: World, treated: np.ndarray, click_weight: float, dynamics: Dynamics, start_day: int, days: int,
           seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One rollout of ``days`` from ``start_day`` in which the ``treated`` people (a bool per person) get the
    launch: the ranker of ``objective_launch(click_weight)`` and ``dynamics``' product change (its novelty);
    the others the engagement ranker. Returns ``by_user_and_day``'s arrays and who is assigned (would visit)."""
    start, earlier, sessions = experiments.test_window(world, start_day, days)
    ids = np.flatnonzero(treated)
    policy = policies.split_policy(objective_launch(world, 0.0), objective_launch(world, click_weight), ids)
    changed = dataclasses.replace(dynamics, treated=frozenset(ids.tolist()))
    rollout = world.rollout(policy, sessions, seed=seed, earlier_impressions=earlier, dynamics=changed)
    assigned = np.isin(np.arange(world.n_people), sessions["user_id"].to_numpy())
    return by_user_and_day(rollout, start, days, world.n_people), assigned


def averaged(world: World, treated: np.ndarray, click_weight: float, dynamics: Dynamics, start_day: int,
             days: int, seeds: tuple[int, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``served``'s arrays averaged over rollouts with each of ``seeds``: one rollout's day is noisy."""
    runs = [served(world, treated, click_weight, dynamics, start_day, days, seed) for seed in seeds]
    return {name: sum(table[name] for table, _ in runs) / len(runs) for name in METRICS}, runs[0][1]


def daily_means(table: Mapping[str, np.ndarray], assigned: np.ndarray) -> pd.DataFrame:
    """Per metric and day, the mean per assigned user (of a rollout that treats everyone or no one: the
    truth a test estimates)."""
    return pd.DataFrame([{"metric": name, "day": day, "mean": float(table[name][assigned, day].mean())}
                         for name in METRICS for day in range(table[name].shape[1])])


def _kept(kind: str, world: World, parameters: tuple[Any, ...], folder: str | Path | None,
          run: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``run()``'s table; with ``folder``, kept there under a hash of ``world``'s content, the ``parameters``
    and the code (``experiments.study_sources``), and read from there when the same code ran
    the same study before: the chapter reads its weeks of rollouts in a second."""
    if folder is None:
        return run()
    identity = [fingerprint.output_digest(world).encode(), repr(parameters).encode()]
    return pd.DataFrame(kept_json(folder, kind, identity, experiments.study_sources(__file__),
                                  lambda: run().to_dict(orient="records")))


#: The redesign chapter 10 tests: the ranker's extra weight on clicks, and the new look's novelty (log-odds).
CLICK_WEIGHT = 30.0
NOVELTY = 0.5
#: The world with memory: users come back less after feeds they regret (and more after good ones).
WITH_MEMORY = Dynamics(return_rate=True, novelty=NOVELTY)


def truth_by_day(world: World, start_day: int, days: int, folder: str | Path | None = None,
                 seeds: tuple[int, ...] = (0, 1, 2)) -> pd.DataFrame:
    """The redesign's truth, day by day: the mean per assigned user of each metric (column ``world``) when no
    one gets it, everyone, everyone without its novelty, and everyone and no one with a flat return rate (each
    visit at the base rate, whatever the feed: the redesign without its slow cost), each averaged over a
    rollout with each of ``seeds``. Kept in ``folder``."""
    return _kept("longterm-truth", world, (start_day, days, seeds), folder,
                 lambda: _truth_by_day(world, start_day, days, seeds))


def _truth_by_day(world: World, start_day: int, days: int, seeds: tuple[int, ...]) -> pd.DataFrame:
    n = world.n_people
    flat = dataclasses.replace(WITH_MEMORY, return_slope=0.0)  # visits at the base rate, whatever the feed
    runs = {"no one": (np.zeros(n, dtype=bool), WITH_MEMORY),
            "everyone": (np.ones(n, dtype=bool), WITH_MEMORY),
            "everyone, no novelty": (np.ones(n, dtype=bool), dataclasses.replace(WITH_MEMORY, novelty=0.0)),
            "everyone, flat return rate": (np.ones(n, dtype=bool), flat),
            "no one, flat return rate": (np.zeros(n, dtype=bool), flat)}
    parts = []
    for name, (treated, dynamics) in runs.items():
        table, assigned = averaged(world, treated, CLICK_WEIGHT, dynamics, start_day, days, seeds)
        parts.append(daily_means(table, assigned).assign(world=name))
    return pd.concat(parts, ignore_index=True)


def holdouts(world: World, start_day: int, days: int, repeats: int, folder: str | Path | None = None,
             share: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """``repeats`` long-running tests of the redesign, each with a fresh random ``share`` of users held out
    on the old feed: per (repeat, metric, week), the relative lift read from it, plain and adjusted by each
    user's value of the metric in the week before the test (``before_test``, CUPED), with the plain one's
    standard error. Kept in ``folder``."""
    require("share", share, is_number(share) and 0.0 < share < 1.0, "a share strictly between 0 and 1")
    require_int("repeats", repeats, 1, 10_000)
    return _kept("longterm-holdouts", world, (start_day, days, repeats, share, seed), folder,
                 lambda: _holdouts(world, start_day, days, repeats, share, seed))


def _holdouts(world: World, start_day: int, days: int, repeats: int, share: float, seed: int) -> pd.DataFrame:
    before = before_test(world, start_day)
    rng = np.random.default_rng(seed)
    rows = []
    for repeat in range(repeats):
        treated = rng.random(world.n_people) >= share
        table, assigned = served(world, treated, CLICK_WEIGHT, WITH_MEMORY, start_day, days, seed=repeat)
        for metric in ("clicks", "engagement", "visits"):
            for week in range(days // 7):
                y = table[metric][:, 7 * week:7 * week + 7].sum(axis=1)
                rows.append({"repeat": repeat, "metric": metric, "week": week + 1,
                             **_lift(y, before[metric], treated, assigned)})
    return pd.DataFrame(rows)


def _lift(y: np.ndarray, x: np.ndarray, treated: np.ndarray, assigned: np.ndarray) -> dict[str, float]:
    y, x, arm = y[assigned], x[assigned], treated[assigned]
    t, c = y[arm], y[~arm]
    lift = t.mean() / c.mean() - 1.0
    se = (1 + lift) * np.sqrt(t.var(ddof=1) / len(t) / t.mean() ** 2 + c.var(ddof=1) / len(c) / c.mean() ** 2)
    adjusted = experiments.cuped(y, x)
    cuped = adjusted[arm].mean() / adjusted[~arm].mean() - 1.0
    return {"lift": float(lift), "se": float(se), "cuped": float(cuped)}


def before_test(world: World, start_day: int, days: int = 7) -> dict[str, np.ndarray]:
    """Each person's clicks, engagement and visits (sessions) over the ``days`` before ``start_day``: the
    covariates a holdout's CUPED adjusts by."""
    start = world.config.start_time + pd.Timedelta(days=start_day)
    log = world.impressions[(world.impressions["timestamp"] < start)
                            & (world.impressions["timestamp"] >= start - pd.Timedelta(days=days))]
    users = log["user_id"].to_numpy()
    values = {"clicks": log["click"].to_numpy(dtype=float), "engagement": engagement_score(log).to_numpy()}
    out = {name: np.bincount(users, weights=v, minlength=world.n_people) for name, v in values.items()}
    sessions = log.drop_duplicates("session_id")["user_id"].to_numpy()
    out["visits"] = np.bincount(sessions, minlength=world.n_people).astype(float)
    return out


def launch_family(world: World, variants: Mapping[str, tuple[float, float]], start_day: int, days: int,
                  folder: str | Path | None = None, seeds: tuple[int, ...] = (0, 1, 2)) -> pd.DataFrame:
    """Each variant (name -> (click weight, novelty)) served to everyone in the world with memory, against no
    one: per variant, the first week's relative lift in engagement and in the bounce rate (bounces per click),
    and the last week's in engagement and visits: a first-week metric that foretells the last week's is a
    surrogate worth reading. Each averaged over a rollout with each of ``seeds``. Kept in ``folder``."""
    return _kept("longterm-family", world, (tuple(variants.items()), start_day, days, seeds), folder,
                 lambda: _launch_family(world, variants, start_day, days, seeds))


def _launch_family(world: World, variants: Mapping[str, tuple[float, float]], start_day: int, days: int,
                   seeds: tuple[int, ...]) -> pd.DataFrame:
    n = world.n_people
    control, assigned = averaged(world, np.zeros(n, dtype=bool), 0.0, WITH_MEMORY, start_day, days, seeds)
    rows = []
    for name, (click_weight, novelty) in variants.items():
        dynamics = dataclasses.replace(WITH_MEMORY, novelty=novelty)
        table, _ = averaged(world, np.ones(n, dtype=bool), click_weight, dynamics, start_day, days, seeds)

        first, last = slice(0, 7), slice(days - 7, days)
        lifts = {"week 1 engagement": ("engagement", first, None), "week 1 bounce rate": ("bounces", first, "clicks"),
                 "last week engagement": ("engagement", last, None), "last week visits": ("visits", last, None)}
        rows.append({"variant": name, "added click weight": click_weight, "novelty": novelty,
                     **{column: _rate(table, metric, per, assigned, week) / _rate(control, metric, per, assigned, week)
                        - 1.0 for column, (metric, week, per) in lifts.items()}})
    return pd.DataFrame(rows)


def _rate(table: Mapping[str, np.ndarray], metric: str, per: str | None, assigned: np.ndarray, days: slice) -> float:
    """The assigned users' total of ``metric`` over ``days``, divided by their total of ``per`` if given."""
    total = float(table[metric][assigned, days].sum())
    return total / float(table[per][assigned, days].sum()) if per else total
