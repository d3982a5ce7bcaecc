"""When offline and online disagree: what each ranker's served feeds truly earn, reaction by reaction.

Offline metrics score a model's heads one at a time, on the logged rows, at the positions the old ranker chose;
serving ranks each session's candidates by a weighted sum of the heads, every candidate at position 1. A model
can win the first and lose the second. ``served_values`` measures the second against the world's truth: each
ranker serves the same sessions through ``World.rollout``, and the world's expected reactions of the feeds it
served, per session, say which reactions it gained and which it lost (what a real test reads, noisily, from
each reaction's metric). A rollout of a week with a model scoring every candidate takes 10 to 30 seconds, so the
study is kept beside the models, like chapter 10's others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from newsfeed import experiments
from newsfeed.cache import kept_json, rows_digest
from newsfeed.metrics import engagement_score
from newsfeed.validation import require, require_int
from newsfeed.world import REACTIONS, Policy, World, fingerprint


def served_reactions(world: World, policy: Policy, sessions: pd.DataFrame, history: pd.DataFrame,
                     seed: int) -> dict[str, float]:
    """The feeds ``policy`` serves to ``sessions`` (after the logged ``history``): the world's expected number
    of each reaction per session, its impressions per session and its expected engagement score per session."""
    served = world.rollout(policy, sessions, seed=seed, earlier_impressions=history)
    truth = served.probabilities
    row = {reaction: float(truth[f"p_{reaction}"].sum() / len(sessions)) for reaction in REACTIONS}
    row["impressions"] = len(truth) / len(sessions)
    row["engagement"] = float(engagement_score(truth, prefix="p_").sum() / len(sessions))
    return row


def served_values(world: World, rankers: Mapping[tuple[str, int], Callable[[], Policy]], sessions: pd.DataFrame,
                  history: pd.DataFrame, seed: int = 0, folder: str | Path | None = None,
                  identity: bytes = b"") -> pd.DataFrame:
    """``served_reactions`` of each of ``rankers``, a row per (model, training seed), every one served with the
    same rollout ``seed``. ``rankers`` maps each (model, training seed) to a function that makes its policy,
    called only when the study is measured: a kept study trains and loads nothing.

    With ``folder``, kept there and read back when the same code served the same rankers to the same sessions;
    a cache cannot see inside a policy, so ``identity`` must say what makes them (their data, their settings)."""
    require("rankers", rankers, isinstance(rankers, Mapping) and len(rankers) > 0
            and all(isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)
                    and isinstance(key[1], int) and callable(make) for key, make in rankers.items()),
            "a non-empty mapping from (model name, training seed) to a function that makes its policy")
    require_int("seed", seed, lo=0)

    def run() -> list[dict[str, object]]:
        return [{"model": name, "training seed": training,
                 **served_reactions(world, make(), sessions, history, seed)}
                for (name, training), make in rankers.items()]

    if folder is None:
        return pd.DataFrame(run())
    from newsfeed.models.shipped import _source_files  # the features and models a served model runs

    key = [fingerprint.output_digest(world).encode(), rows_digest(sessions, history), identity,
           repr((list(rankers), seed)).encode()]
    return pd.DataFrame(kept_json(folder, "served", key, [*_source_files(), *experiments.study_sources(__file__)],
                                  run))
