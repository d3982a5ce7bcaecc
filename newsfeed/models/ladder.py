"""Where the rest of the oracle's lift goes: chapter 4's measured ladder past the shipped network.

Four studies, each a list of ``Run``s, one network each, every one trained as chapter 4 selects its model (on
weeks 1–2, with early stopping on week 3) and measured on week 3, so that choosing among them never reads the
test week:

- ``"rungs"``: the chapter's network with each of ``models.rungs``' shapes;
- ``"informed"``: the network given some or all of the world's hidden variables as features, the achievable
  ceiling of a model that could observe them;
- ``"ablation"``: the network without one group of features;
- ``"learning curve"``: the network trained on a share of the training sessions.

``ladder`` trains what is missing (about 40 s a network on a laptop) and keeps only what it measured, a few
numbers per run, in the artifacts folder, keyed like a fitted network by the configuration, the rows and the
code; the default world's results are committed, so the chapter reads them in a second.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from newsfeed import metrics
from newsfeed.cache import fitted_path, keep_fitted, rows_digest
from newsfeed.models import rungs
from newsfeed.models.multitask import MultiTask, MultiTaskConfig
from newsfeed.models.shipped import _source_files
from newsfeed.validation import require
from newsfeed.world import REACTIONS

if TYPE_CHECKING:
    from newsfeed.features import Dataset
    from newsfeed.world import World

#: The rungs' names, and the shape each trains (``rungs.RungConfig.architecture``; None: the shipped one).
RUNGS: dict[str, str | None] = {
    "shared layers (as shipped)": None,
    "cross network (DCN-v2)": "cross",
    "hide tower": "hide-tower",
    "recent engagements (DIN)": "history",
}
#: Shares of the training sessions on the learning curve (the rungs' shipped shape is its full-data point).
SHARES = (0.25, 0.5)
STUDIES = ("rungs", "informed", "ablation", "learning curve")


@dataclass(frozen=True)
class Run:
    """One network of a study: its configuration, and the share of the training sessions it sees."""

    study: str
    name: str
    config: MultiTaskConfig
    share: float = 1.0


def runs(base: MultiTaskConfig, seeds: Iterable[int], epochs: int | None = None) -> list[Run]:
    """Every run of the four studies, each a change to ``base`` (chapter 4's configuration): the rungs, the
    all-hidden ceiling and the learning curve with each of ``seeds``, the single hidden groups and the ablations
    with the first (a difference smaller than the seeds' spread is a tie). ``epochs`` caps every run's epochs
    (a quick run, not the book's)."""
    seeds = list(seeds)
    require("seeds", seeds, len(seeds) >= 1 and all(isinstance(s, int) and s >= 0 for s in seeds),
            "one or more integers >= 0")

    def config(seed: int, **changes: object) -> MultiTaskConfig:
        changed = dataclasses.replace(base, seed=seed, **changes)
        return dataclasses.replace(changed, max_epochs=min(changed.max_epochs, epochs or changed.max_epochs))

    everything = rungs.shipped_numeric() + rungs.hidden_columns()
    found = [Run("rungs", name, rungs.RungConfig.of(config(seed), shape) if shape else config(seed))
             for seed in seeds for name, shape in RUNGS.items()]
    found += [Run("informed", "all hidden variables", config(seed, numeric=everything)) for seed in seeds]
    found += [Run("informed", f"the {group}'s hidden variables",
                  config(seeds[0], numeric=rungs.shipped_numeric() + rungs.hidden_columns([group])))
              for group in rungs.HIDDEN_GROUPS]
    found += [Run("ablation", f"without the {group}", config(seeds[0], numeric=rungs.ablated(group)))
              for group in rungs.FEATURE_GROUPS]
    found += [Run("learning curve", f"{share:.0%} of the sessions", config(seed), share)
              for seed in seeds for share in SHARES]
    return found


def study_table(dataset: Dataset, world: World) -> pd.DataFrame:
    """The dataset's table with what the rungs and the informed ceiling read: each row's recent engagements
    (``rungs.with_history``) and hidden variables (``rungs.with_hidden``)."""
    return rungs.with_hidden(rungs.with_history(dataset.table, dataset.table), world)


def _sessions_share(rows: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """A random ``share`` of the sessions of ``rows`` (whole sessions, drawn with ``seed``)."""
    if share >= 1:
        return rows
    sessions = rows["session_id"].unique()
    chosen = np.random.default_rng(seed).choice(sessions, size=round(share * len(sessions)), replace=False)
    return rows[rows["session_id"].isin(chosen)]


def measure(probabilities: pd.DataFrame, scores: np.ndarray, rows: pd.DataFrame,
            true_engagement: np.ndarray) -> dict[str, float]:
    """What the ladder compares: nDCG@10 of the order ``scores`` serve (true engagement as relevance), and each
    head's ROC-AUC and calibration (mean predicted over observed) on the logged ``rows``."""
    row = {"ndcg@10": metrics.ndcg_at_k(rows["session_id"].to_numpy(), scores, true_engagement, 10)}
    for reaction in REACTIONS:
        row[f"auc_{reaction}"] = float(roc_auc_score(rows[reaction], probabilities[f"p_{reaction}"]))
        row[f"calibration_{reaction}"] = metrics.calibration(rows[reaction], probabilities[f"p_{reaction}"])
    return row


def measured(run: Run, table: pd.DataFrame, dataset: Dataset, true_engagement: np.ndarray,
             folder: str | Path) -> dict[str, float]:
    """``measure`` of the network ``run`` describes on week 3, read from ``folder`` if this code measured it on
    these rows before, otherwise trained (on a share of weeks 1–2, early stopping on week 3) and measured now,
    and kept there with the epoch early stopping chose."""
    train = _sessions_share(table[dataset.split == "train"], run.share, run.config.seed)
    valid = table[dataset.split == "valid"]
    identity = [repr(run.config).encode(), rows_digest(train, valid)]
    path = fitted_path(folder, "ladder", identity, _source_files(), suffix=".json")
    if path.exists():
        return json.loads(path.read_text())
    ranker = rungs.Rung if isinstance(run.config, rungs.RungConfig) else MultiTask
    network = ranker(run.config, progress=None).fit(train, valid)
    result = measure(network.predict(valid), network.score(valid), valid, true_engagement)
    result["best epoch"] = float(network.best_epoch)
    keep_fitted(path, json.dumps(result, indent=1).encode())
    return result


def oracle(dataset: Dataset, world: World) -> dict[str, float]:
    """``measure`` of the world's own probabilities on week 3: the ceiling every run is read against."""
    valid = dataset.part("valid")
    truth = metrics.true_engagement(world, valid)
    return measure(world.logged_probabilities(valid["impression_id"]), truth, valid, truth)


def ladder(base: MultiTaskConfig, dataset: Dataset, world: World, folder: str | Path,
           seeds: Iterable[int] = (0, 1, 2), studies: Iterable[str] = STUDIES, epochs: int | None = None,
           progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Every run of ``studies`` (``runs`` of ``base``), measured on week 3: a row per (study, name, seed)."""
    studies = list(studies)
    require("studies", studies, bool(studies) and set(studies) <= set(STUDIES), f"some of {', '.join(STUDIES)}")
    table = study_table(dataset, world)
    truth = metrics.true_engagement(world, table[dataset.split == "valid"])
    rows = {}
    for run in (run for run in runs(base, seeds, epochs) if run.study in studies):
        if progress is not None:
            progress(f"{run.study}: {run.name}, seed {run.config.seed}")
        rows[(run.study, run.name, run.config.seed)] = measured(run, table, dataset, truth, folder)
    return pd.DataFrame(rows).T.rename_axis(["study", "name", "seed"])
