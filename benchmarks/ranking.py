"""How good are the rankers? Every model of chapter 4, trained as shipped (weeks 1-3), on the test week,
against the world's ground truth (the oracle) and random.

    python benchmarks/ranking.py           # tables
    python benchmarks/ranking.py --json    # one object: {"models": {NAME: {...}}, "oracle": {...}, "random": {...}}
    python benchmarks/ranking.py --seeds 0 1 2   # also the network retrained with each seed: how much is noise?
    python benchmarks/ranking.py --ladder   # also chapter 4's ladder (rungs, informed ceiling, ablation, learning
                                            # curve) over --seeds (default 0 1 2), as cached or trained now
    python benchmarks/ranking.py --scale small --epochs 1 --trees 10   # a quick run (the test suite's)

Metrics: "ndcg@10" is per-session nDCG@10 with the true expected weighted engagement (at the top of the feed) as
relevance; "ndcg@10_logged" uses the logged weighted engagement instead (biased towards the legacy ranker's
order); "auc_<reaction>" is ROC-AUC on the logged impressions; "auc_lift_share_<reaction>" is the share of the
oracle's AUC lift over random (0.5) that a model captures; "calibration_<reaction>" is the mean predicted
probability over the observed rate (1 is calibrated; not for random), and "ece_<reaction>" its expected calibration
error (the mean gap between predicted and observed rate over ten groups of rows cut by prediction, as chapter 5
defines it; 0 is calibrated). With ``--seeds``, the report gains
"network_seeds": the network's metrics for each training seed (same world, same data, the shipped epoch count:
``models.reseeded``, as chapter 5 trains them) and their mean and standard deviation, which is the yardstick
for any difference between models in the third decimal, and each seed's heads recalibrated nightly after the test
week's first two days (chapter 5's ``models.CalibratedNightly``): "nightly_calibration_<reaction>" over the observed
rate and "nightly_truth_<reaction>" over the world's true probabilities, on the days after.

With ``--ladder [STUDY ...]`` (all four by default), the report gains "ladder": for each study and run, the mean
and standard deviation over seeds of nDCG@10 and of each head's ROC-AUC and share of the oracle's AUC lift, and the
lowest and highest calibration of each head over seeds, all on week 3, where chapter 4 chooses its model (every run
trains on weeks 1-2: ``models.ladder``), and "oracle", the world's own probabilities measured the same way.

``--epochs`` trains the network for that many epochs instead of the count early stopping chose, and ``--trees``
gives the gradient-boosted trees that many trees instead of the shipped 120: both make a quick run (the test suite's,
on the small world), not the shipped models. Such a network is cached apart, in a folder named like the shipped
models' with ``-epochs<n>`` added, and such baselines are not cached: a quick run never stands in for the shipped
models of the chapters (nor lands among the committed ones).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from newsfeed import features, metrics, models
from newsfeed.metrics import engagement_score, ndcg_at_k
from newsfeed.models import ladder
from newsfeed.notebook import setup
from newsfeed.world import REACTIONS, SCALES, World, artifacts_folder, load_world

#: The shipped gradient-boosted trees' size (``models.gradient_boosting``'s default).
SHIPPED_TREES = 120
#: The test week's first days, before the first nightly recalibration (chapter 5's ``CALIBRATION_DAYS``).
CALIBRATION_DAYS = 2


def evaluate(scores: np.ndarray, probabilities: pd.DataFrame | None, test: pd.DataFrame, sessions: np.ndarray,
             true_engagement: np.ndarray, logged_engagement: np.ndarray) -> dict[str, float]:
    row = {"ndcg@10": ndcg_at_k(sessions, scores, true_engagement, 10),
           "ndcg@10_logged": ndcg_at_k(sessions, scores, logged_engagement, 10)}
    for reaction in REACTIONS:
        column = probabilities[f"p_{reaction}"] if probabilities is not None else scores
        row[f"auc_{reaction}"] = float(roc_auc_score(test[reaction], column))
        if probabilities is not None:  # mean predicted over observed rate: 1 is calibrated
            row[f"calibration_{reaction}"] = float(column.mean() / test[reaction].mean())
            row[f"ece_{reaction}"] = metrics.expected_calibration_error(test[reaction], column)
    return row


def baselines(dataset: features.Dataset, seed: int, folder: Path, trees: int) -> dict[str, models.Ranker]:
    """The baselines as shipped (cached in ``folder``), or with ``trees`` trees in the boosted model (not cached)."""
    if trees == SHIPPED_TREES:
        return models.final_baselines(dataset, seed, folder)
    rankers = [models.Chronological(), models.Popularity(), models.logistic_regression(seed),
               models.gradient_boosting(seed, trees=trees)]
    both = dataset.part("train", "valid")
    return {ranker.name: ranker.fit(both) for ranker in rankers}


def nightly(network: models.Ranker, test: pd.DataFrame, later: np.ndarray, truth: pd.DataFrame) -> dict[str, float]:
    """Chapter 5's nightly recalibration: each head's calibration on the test week after its first days, refitted
    every night on the days before, over the observed rate and over the world's true probabilities."""
    recalibrated = models.CalibratedNightly(network, CALIBRATION_DAYS).fit(test).predict(test[later])
    row = {}
    for reaction in REACTIONS:
        predicted = recalibrated[f"p_{reaction}"]
        row[f"nightly_calibration_{reaction}"] = metrics.calibration(test.loc[later, reaction], predicted)
        row[f"nightly_truth_{reaction}"] = float(predicted.mean() / truth.loc[later, f"p_{reaction}"].mean())
    return row


def network_folder(folder: Path, epochs: int | None) -> Path:
    """Where the network is cached: ``folder`` as shipped, ``<folder>-epochs<epochs>`` for a quick run."""
    return folder if epochs is None else folder.with_name(f"{folder.name}-epochs{epochs}")


def network(dataset: features.Dataset, folder: Path, epochs: int | None) -> models.MultiTask:
    """The network as shipped (early stopping's epoch count, cached in ``folder``), or trained ``epochs`` epochs
    and cached apart (``network_folder``)."""
    return models.final_multitask(dataset, network_folder(folder, epochs), epochs=epochs)


def ladder_report(dataset: features.Dataset, world: World, folder: Path,
                  args: argparse.Namespace) -> dict[str, object]:
    """Chapter 4's ladder (``models.ladder``: every run trained on weeks 1-2 and measured on week 3) over
    ``args.seeds``: per study and run, the seeds, the mean and standard deviation of each metric (with each head's
    share of the oracle's AUC lift on week 3), and each head's lowest and highest calibration; and the oracle."""
    results = ladder.ladder(models.MultiTaskConfig(), dataset, world, folder, seeds=args.seeds or [0, 1, 2],
                            studies=args.ladder or ladder.STUDIES, epochs=args.epochs)
    oracle = ladder.oracle(dataset, world)
    for reaction in REACTIONS:
        results[f"auc_lift_share_{reaction}"] = metrics.share_of_lift(results[f"auc_{reaction}"], 0.5,
                                                                      oracle[f"auc_{reaction}"])
    report: dict[str, object] = {"oracle": oracle}
    for (study, name), runs in results.groupby(level=["study", "name"], sort=False):
        calibration = runs[[f"calibration_{r}" for r in REACTIONS]].rename(columns=lambda c: c.split("_", 1)[1])
        report.setdefault(study, {})[name] = {
            "seeds": len(runs), "mean": runs.mean().to_dict(),
            "std": runs.std(ddof=1).fillna(0.0).to_dict(),
            "calibration_lowest": calibration.min().to_dict(), "calibration_highest": calibration.max().to_dict()}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and of every model (default 0)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[],
                        help="also the network retrained with each of these seeds (about 40 s each, unless cached)")
    parser.add_argument("--scale", default="default", choices=list(SCALES),
                        help="world scale (default: default)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train the network this many epochs (default: as shipped, early stopping's count)")
    parser.add_argument("--trees", type=int, default=SHIPPED_TREES,
                        help=f"trees of the gradient-boosted baseline (default {SHIPPED_TREES}, as shipped)")
    parser.add_argument("--ladder", nargs="*", default=None, choices=ladder.STUDIES, metavar="STUDY",
                        help="also chapter 4's ladder: these studies (default: all of "
                             f"{', '.join(ladder.STUDIES)}) over --seeds (default 0 1 2)")
    args = parser.parse_args()
    for name in ("epochs", "trees"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name}={value} is invalid: --{name} accepts an integer >= 1")
    setup(args.seed)
    world = load_world(args.scale, args.seed)
    dataset = features.build_dataset(world, seed=args.seed)
    test = dataset.part("test")
    folder = artifacts_folder(args.scale, args.seed)
    tick = time.perf_counter()
    rankers = {**baselines(dataset, args.seed, folder, args.trees),
               models.MultiTask.name: network(dataset, folder, args.epochs)}
    train_seconds = time.perf_counter() - tick

    sessions = test["session_id"].to_numpy()
    true_engagement = metrics.true_engagement(world, test)
    logged_engagement = engagement_score(test).to_numpy()
    truth = world.logged_probabilities(test["impression_id"])

    report: dict[str, object] = {"models": {}}
    for name, ranker in rankers.items():
        report["models"][name] = evaluate(ranker.score(test), ranker.predict(test), test, sessions,
                                          true_engagement, logged_engagement)
    report["oracle"] = evaluate(true_engagement, truth, test, sessions, true_engagement, logged_engagement)
    rng = np.random.default_rng(args.seed)
    random_scores = rng.random(len(test))
    report["random"] = evaluate(random_scores, None, test, sessions, true_engagement, logged_engagement)
    seeded = {}
    shipped = rankers[models.MultiTask.name]
    later = test["timestamp"] >= test["timestamp"].min().floor("D") + pd.Timedelta(days=CALIBRATION_DAYS)
    for seed in args.seeds:  # chapter 5's recipe: the same epochs, another seed
        retrained = models.reseeded(shipped, dataset, seed, network_folder(folder, args.epochs))
        seeded[seed] = evaluate(retrained.score(test), retrained.predict(test), test, sessions, true_engagement,
                                logged_engagement)
        seeded[seed].update(nightly(retrained, test, later.to_numpy(), truth))
    for row in [*report["models"].values(), *seeded.values()]:
        for reaction in REACTIONS:
            oracle_lift = report["oracle"][f"auc_{reaction}"] - 0.5
            row[f"auc_lift_share_{reaction}"] = (row[f"auc_{reaction}"] - 0.5) / oracle_lift
    if seeded:
        spread = pd.DataFrame(seeded).T
        report["network_seeds"] = {"per_seed": {str(k): v for k, v in seeded.items()},
                                   "mean": spread.mean().to_dict(), "std": spread.std(ddof=1).to_dict()}
    if args.ladder is not None:
        report["ladder"] = ladder_report(dataset, world, network_folder(folder, args.epochs), args)
    report["test_impressions"] = len(test)
    report["test_sessions"] = int(test["session_id"].nunique())
    report["seconds_to_train_or_load"] = train_seconds
    report["scale"], report["epochs"], report["trees"] = args.scale, args.epochs, args.trees
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    table = pd.DataFrame({**report["models"], "oracle": report["oracle"], "random": report["random"]}).T
    print(f"Test week: {len(test):,} impressions in {report['test_sessions']:,} sessions; models trained on weeks 1-3")
    columns = ["ndcg@10", "ndcg@10_logged", *(f"auc_{r}" for r in REACTIONS)]
    print(table[columns].to_string(float_format="{:.4f}".format))
    print("\nShare of the oracle's ROC-AUC lift over random:")
    shares = pd.DataFrame(report["models"]).T[[f"auc_lift_share_{r}" for r in REACTIONS]]
    print(shares.to_string(float_format="{:.3f}".format))
    print("\nCalibration (mean predicted over observed rate; 1 is calibrated):")
    # Reverse-chronological "probabilities" are freshness scores, not probabilities: no calibration to read.
    probabilistic = table.drop(index=["random", models.Chronological.name])
    calibration = probabilistic[[f"calibration_{r}" for r in REACTIONS]]
    print(calibration.to_string(float_format="{:.3f}".format))
    print("\nExpected calibration error, as a share of each reaction's rate (0 is calibrated):")
    rates = pd.Series({f"ece_{r}": test[r].mean() for r in REACTIONS})
    errors = probabilistic[rates.index] / rates
    print(errors.to_string(float_format="{:.3f}".format))
    if seeded:
        columns = ["ndcg@10", "auc_lift_share_click", "auc_lift_share_like", "calibration_like", "calibration_share"]
        spread = pd.DataFrame(seeded).T[columns]
        spread.index = [f"network, seed {seed}" for seed in spread.index]
        spread.loc["mean"], spread.loc["standard deviation"] = spread.mean(), spread.std(ddof=1)
        print("\nThe network retrained with other seeds (same world, same data):")
        print(spread.to_string(float_format="{:.4f}".format))
        print(f"\nRecalibrated nightly (chapter 5), after the test week's first {CALIBRATION_DAYS} days: each head's "
              "lowest and highest seed")
        per_seed = pd.DataFrame(seeded).T
        bands = {}
        for against, key in (("over the labels", "calibration"), ("over the truth", "truth")):
            ratios = per_seed[[f"nightly_{key}_{r}" for r in REACTIONS]].set_axis(list(REACTIONS), axis=1)
            bands[against] = {r: f"{ratios[r].min():.3f} to {ratios[r].max():.3f}" for r in REACTIONS}
        print(pd.DataFrame(bands).to_string())
    if args.ladder is not None:
        print("\nChapter 4's ladder on week 3 (mean and standard deviation over seeds):")
        columns = ["ndcg@10", *(f"auc_lift_share_{r}" for r in REACTIONS)]
        for study, runs in report["ladder"].items():
            if study == "oracle":
                continue
            rows = {name: {"seeds": run["seeds"], **{f"{c} mean": run["mean"][c] for c in columns},
                           "ndcg@10 std": run["std"]["ndcg@10"]} for name, run in runs.items()}
            print(f"{study}:\n" + pd.DataFrame(rows).T.to_string(float_format="{:.4f}".format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
