"""Does correcting for position bias help, and by how much? Chapter 4's network trained three ways on the same
logs, each served to the test week's sessions and measured by the true engagement of the feeds it serves.

- ``"no correction"``: position is left out of the model; a post's clicks at position 9 count as its appeal;
- ``"position tower (as shipped)"``: chapter 4's network, whose shallow tower learns a shift per position in
  training and is set to position 1 when serving;
- ``"inverse propensity"``: no tower; each label divided by the chance its post was examined, ``k ** -b``, with
  ``b`` fitted to the examination curve of the randomized sessions (``estimators.examination_exponent``).

Each network is trained as chapter 4's ladder trains (weeks 1–2, early stopping on week 3) and served through
``World.rollout`` for the test week, from the features as of its start. Training and serving one takes about
half a minute on a laptop; what each measured is kept in the artifacts folder (keyed like a fitted network),
and the default world's results are committed, so the chapter reads them in a second.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from newsfeed import policies
from newsfeed.cache import fitted_path, keep_fitted, rows_digest
from newsfeed.metrics import engagement_score
from newsfeed.models import MultiTaskConfig, serving_view
from newsfeed.offpolicy.relabeled import Relabeled, examination, study_sources
from newsfeed.validation import is_number, require
from newsfeed.world import REACTIONS

if TYPE_CHECKING:
    from newsfeed.features import Dataset
    from newsfeed.world import World

VARIANTS = ("no correction", "position tower (as shipped)", "inverse propensity")


def served_engagement(world: World, policy: policies.Policy, sessions: pd.DataFrame, history: pd.DataFrame,
                      seed: int) -> float:
    """The true expected engagement per session of the feeds ``policy`` serves to ``sessions`` (after the logged
    ``history``): what the world knows and no log shows."""
    served = world.rollout(policy, sessions, seed=seed, earlier_impressions=history)
    return float(engagement_score(served.probabilities, prefix="p_").sum() / len(sessions))


def _options(variant: str, exponent: float, max_position: int) -> dict[str, Any]:
    if variant == "no correction":
        return {"position_tower": False}
    if variant == "inverse propensity":
        return {"position_tower": False, "observed": examination(exponent, max_position)}
    return {}


def position_study(dataset: Dataset, world: World, exponent: float, folder: str | Path,
                   seeds: Iterable[int] = (0, 1, 2), base: MultiTaskConfig | None = None, rollout_seed: int = 0,
                   progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Each of ``VARIANTS`` trained with each of ``seeds`` (chapter 4's ``base`` configuration otherwise): a row
    per (variant, seed) with the true engagement per session its feeds earn in the test week, its epochs, and,
    for each reaction, its mean predicted probability at position 1 over the world's on week 3 (what serving
    at the top needs: 1 is calibrated there). Read from ``folder`` when this code measured the same run before."""
    require("exponent", exponent, is_number(exponent) and round(exponent, 2) == exponent,
            "a number with at most two decimals (a configuration a team writes down, the same on every machine)")
    base = base or MultiTaskConfig()
    train, valid, test = dataset.part("train"), dataset.part("valid"), dataset.part("test")
    start = test["timestamp"].min().floor("D")
    history = dataset.log[dataset.log["timestamp"] < start]
    sessions = world.sessions[world.sessions["started_at"] >= start]
    context: dict[str, Any] = {}
    rows = {}
    for seed in seeds:
        config = dataclasses.replace(base, seed=seed)
        for variant in VARIANTS:
            identity = [variant.encode(), repr(config).encode(), rows_digest(train, valid),
                        repr((exponent, rollout_seed)).encode()]
            path = fitted_path(folder, "position", identity, study_sources(__file__), suffix=".json")
            if not path.exists():
                if progress is not None:
                    progress(f"{variant}, seed {seed}")
                if not context:  # once, and only if something must be trained
                    context["aggregates"] = dataset.aggregates(history)
                    top = serving_view(valid)
                    truth = world.probabilities(top["user_id"], top["post_id"], 1, top["timestamp"], top["device"])
                    context["top"], context["truth"] = top, truth
                network = Relabeled(config, progress=None, **_options(variant, exponent, base.max_position))
                network.fit(train, valid)
                policy = policies.ranking_policy(network, context["aggregates"], world.edges, dataset)
                result = {"engagement per session": served_engagement(world, policy, sessions, history,
                                                                      rollout_seed),
                          "epochs": float(network.best_epoch)}
                predicted = network.predict(context["top"])
                for reaction in REACTIONS:
                    result[f"{reaction} at the top, predicted / true"] = float(
                        predicted[f"p_{reaction}"].mean() / context["truth"][f"p_{reaction}"].mean())
                keep_fitted(path, json.dumps(result, indent=1).encode())
            rows[(variant, seed)] = json.loads(path.read_text())
    return pd.DataFrame(rows).T.rename_axis(["variant", "seed"])


def reference_engagement(dataset: Dataset, world: World, policy: policies.Policy, rollout_seed: int = 0) -> float:
    """``served_engagement`` of any ``policy`` over the study's test week (the oracle's, the legacy ranker's)."""
    test = dataset.part("test")
    start = test["timestamp"].min().floor("D")
    history = dataset.log[dataset.log["timestamp"] < start]
    return served_engagement(world, policy, world.sessions[world.sessions["started_at"] >= start], history,
                             rollout_seed)


def lift_shares(study: pd.DataFrame, legacy: float, oracle: float) -> pd.Series:
    """Each run's share of the oracle's lift over the legacy ranker in true engagement per session."""
    return ((study["engagement per session"] - legacy) / (oracle - legacy)).rename("share of the oracle's lift")

