"""Labels that arrive late: a reaction reaches the log some time after its impression, and a model trained before
it arrives reads a negative.

The world decides whether a reaction happens; how long after the impression it reaches the training data is
drawn here, per reaction, from a log-normal distribution (``DELAYS``). A delay is a product of several
independent factors (reading time, leaving and coming back, a batch pipeline), so its logarithm is close to
normal, with a long right tail: most shares within hours, some days later. A click lands in seconds; a comment
takes writing; a share, sending to someone. The delays change when a label is known, never whether it happens,
so earlier chapters, which train on eventual labels, read the same log as before; they leave delays off.

Four ways to train at a cut-off (``delay_study``): on the eventual labels (no team has them at the cut-off),
treating what has not arrived as a negative, waiting an attribution window before a row is used, and relabeling
each row's labels by the chance they have arrived (``relabeled.Relabeled``; the delayed-feedback problem of
Chapelle, 2014).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import norm

from newsfeed.cache import fitted_path, keep_fitted, rows_digest
from newsfeed.models import MultiTaskConfig
from newsfeed.offpolicy.relabeled import Observed, Relabeled, study_sources
from newsfeed.validation import is_number, require, require_columns
from newsfeed.world import REACTIONS

if TYPE_CHECKING:
    from newsfeed.world import World

#: Each reaction's delay from impression to log: (median seconds, standard deviation of the log of the delay).
DELAYS: dict[str, tuple[float, float]] = {"click": (20.0, 1.0), "like": (120.0, 1.5), "hide": (60.0, 1.0),
                                          "comment": (2 * 3600.0, 1.5), "share": (8 * 3600.0, 1.5)}


def arrival_delays(impressions: pd.DataFrame, seed: int = 0,
                   delays: Mapping[str, tuple[float, float]] = DELAYS) -> pd.DataFrame:
    """Seconds from each impression to the arrival of each of its reactions in the log, NaN where the reaction
    did not happen: one log-normal draw per impression and reaction."""
    require_columns("impressions", impressions, list(REACTIONS))
    require("delays", delays, isinstance(delays, Mapping) and set(REACTIONS) <= set(delays)
            and all(is_number(m) and m > 0 and is_number(s) and s > 0 for m, s in delays.values()),
            f"a (median seconds > 0, sigma > 0) pair for each of {', '.join(REACTIONS)}")
    rng = np.random.default_rng(seed)
    drawn = {}
    for reaction in REACTIONS:
        median, sigma = delays[reaction]
        seconds = median * np.exp(sigma * rng.standard_normal(len(impressions)))
        drawn[reaction] = np.where(impressions[reaction].to_numpy() == 1, seconds, np.nan)
    return pd.DataFrame(drawn, index=impressions.index)


def known_at(impressions: pd.DataFrame, delays: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """``impressions`` with each reaction as the log holds it at ``cutoff``: 1 only if it has arrived by then."""
    require_columns("impressions", impressions, ["timestamp", *REACTIONS])
    age = (cutoff - impressions["timestamp"]).dt.total_seconds().to_numpy()
    arrived = {reaction: (delays[reaction].to_numpy() <= age).astype(impressions[reaction].dtype)
               for reaction in REACTIONS}  # NaN (no reaction) compares False
    return impressions.assign(**arrived)


def fit_delays(impressions: pd.DataFrame, delays: pd.DataFrame, cutoff: pd.Timestamp,
               mature_days: float = 7.0) -> pd.DataFrame:
    """Each reaction's log-normal delay (median seconds, sigma) as a team estimates it at ``cutoff``: from the
    reactions of impressions older than ``mature_days``, nearly all of which have arrived."""
    age = (cutoff - impressions["timestamp"]).dt.total_seconds().to_numpy()
    mature = age >= mature_days * 86_400
    fitted = {}
    for reaction in REACTIONS:
        seconds = delays[reaction].to_numpy()[mature]
        logged = np.log(seconds[seconds <= age[mature]])
        require("impressions", f"{len(logged)} arrived {reaction}s older than {mature_days} days",
                len(logged) >= 2, f"two or more arrived reactions of each kind older than {mature_days} days")
        fitted[reaction] = {"median seconds": float(np.exp(logged.mean())), "sigma": float(logged.std(ddof=1))}
    return pd.DataFrame(fitted).T


def arrival_chance(fitted: pd.DataFrame, cutoff: pd.Timestamp, floor: float = 0.1) -> Observed:
    """The chance that a row's reaction, had it happened, has arrived by ``cutoff``: the ``fitted`` delay's
    cumulative distribution at the row's age, floored at ``floor`` (the youngest rows would otherwise count a
    rare early arrival many times over)."""
    require("floor", floor, is_number(floor) and 0 < floor <= 1, "a number > 0 and <= 1")

    def observed(table: pd.DataFrame) -> np.ndarray:
        age = np.maximum((cutoff - table["timestamp"]).dt.total_seconds().to_numpy(), 1.0)
        chance = [norm.cdf((np.log(age) - np.log(fitted.at[r, "median seconds"])) / fitted.at[r, "sigma"])
                  for r in REACTIONS]
        return np.maximum(np.column_stack(chance), floor)

    return observed


#: The study's ways to train, each with the rows it learns from ("window": every row of the training window,
#: "waited": those older than the attribution window) and its labels ("eventual", "known": as known at the cut-off,
#: "relabeled": as known, divided by the chance of having arrived). Each way is read against the network trained
#: on the same rows with their eventual labels, its ``TWINS``: what the labels alone change.
WAYS: dict[str, tuple[str, str]] = {"eventual labels": ("window", "eventual"),
                                    "late labels as negatives": ("window", "known"),
                                    "relabeled by the arrival curve": ("window", "relabeled"),
                                    "eventual labels, waited rows": ("waited", "eventual"),
                                    "attribution window": ("waited", "known")}
TWINS = {"late labels as negatives": "eventual labels", "relabeled by the arrival curve": "eventual labels",
         "attribution window": "eventual labels, waited rows"}


def delay_study(table: pd.DataFrame, world: World, cutoff: pd.Timestamp, window_days: float, wait_hours: float,
                folder: str | Path, base: MultiTaskConfig, seeds: tuple[int, ...] = (0, 1, 2),
                delay_seed: int = 0) -> pd.DataFrame:
    """Chapter 4's network trained at ``cutoff`` on the ``window_days`` before it, each of the ``WAYS`` (the
    attribution window waits ``wait_hours``; relabeling divides by the arrival curve that ``fit_delays`` finds in
    the rows older than a week; every delay drawn by ``arrival_delays`` with ``delay_seed``), with each of
    ``seeds``: a row per (way, seed) with each head's mean predicted rate on the day after ``cutoff``, the
    world's mean true probability there, and how old the newest row it learned from is. Read from ``folder``
    when this code measured the same run before."""
    require_columns("table", table, ["impression_id", "timestamp", *REACTIONS])
    require("wait_hours", wait_hours, is_number(wait_hours) and 0 < wait_hours < 24 * window_days,
            f"a number of hours > 0 and shorter than the window ({window_days} days)")
    before = table[table["timestamp"] < cutoff]
    delays = arrival_delays(before, delay_seed)
    chance = arrival_chance(fit_delays(before, delays, cutoff), cutoff)  # from the rows older than a week
    in_window = (before["timestamp"] >= cutoff - pd.Timedelta(days=window_days)).to_numpy()
    rows, known = before[in_window], known_at(before[in_window], delays[in_window], cutoff)
    old = (rows["timestamp"] < cutoff - pd.Timedelta(hours=wait_hours)).to_numpy()
    data = {("window", "eventual"): (rows, None), ("window", "known"): (known, None),
            ("window", "relabeled"): (known, chance), ("waited", "eventual"): (rows[old], None),
            ("waited", "known"): (known[old], None)}
    later = table[(table["timestamp"] >= cutoff) & (table["timestamp"] < cutoff + pd.Timedelta(days=1))]
    truth = None
    results = {}
    for way, key in WAYS.items():
        train, observed = data[key]
        for seed in seeds:
            config = dataclasses.replace(base, seed=seed)
            identity = [repr(key).encode(), repr(config).encode(), rows_digest(train), rows_digest(later),
                        repr((window_days, wait_hours, delay_seed)).encode()]
            path = fitted_path(folder, "delays", identity, study_sources(__file__), suffix=".json")
            if not path.exists():
                network = Relabeled(config, observed=observed, progress=None).fit(train)
                predicted = network.predict(later)
                if truth is None:
                    truth = world.logged_probabilities(later["impression_id"])
                result = {f"predicted {r}": float(predicted[f"p_{r}"].mean()) for r in REACTIONS}
                result |= {f"true {r}": float(truth[f"p_{r}"].mean()) for r in REACTIONS}
                result["newest row, hours before the cut-off"] = float(
                    (cutoff - train["timestamp"].max()).total_seconds() / 3600)
                keep_fitted(path, json.dumps(result, indent=1).encode())
            results[(way, seed)] = json.loads(path.read_text())
    return pd.DataFrame(results).T.rename_axis(["training labels", "seed"])


def label_bias(study: pd.DataFrame) -> pd.DataFrame:
    """Per way of training with late labels (``TWINS``), each head's mean predicted rate over its twin's (the
    network of the same seed trained on the same rows' eventual labels), averaged over the seeds: what the labels
    alone change (1 is no bias), and the freshness the way gives up."""
    ratios = {}
    for way, twin in TWINS.items():
        ratio = pd.DataFrame({r: study.loc[way, f"predicted {r}"] / study.loc[twin, f"predicted {r}"]
                              for r in REACTIONS})
        ratios[way] = ratio.mean().to_dict() | {
            "newest row, hours": float(study.loc[way, "newest row, hours before the cut-off"].max())}
    return pd.DataFrame(ratios).T.rename_axis("training labels")
