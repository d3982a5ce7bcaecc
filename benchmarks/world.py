"""How real is the simulated world? Rates, heavy tails, position bias, learnable signal, and cost by scale.

    python benchmarks/world.py                  # a table per question, default world, all scales timed
    python benchmarks/world.py --json           # one JSON object with every number
    python benchmarks/world.py --scales small   # time only the given scales
    python benchmarks/world.py --scale small --scales small --repeats 1   # a quick run (the test suite's)

Each scale is generated in a fresh subprocess, so its time and peak memory are its own. ``--scale`` chooses the
world whose realism is measured (generated afresh, not read from the cache; default: the default world).

The mechanisms a rollout can switch on for chapter 10 (``world.Dynamics``) cost nothing when off: generation
never uses them. Their cost when on is timed on the measured world's last week, served by the legacy ranker,
against the same rollout without them. Chapter 11's mechanisms of generation (harmful posts and a spam burst,
``CHAPTER_11``) are timed by generating each scale with them on, in its own fresh subprocess too.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from newsfeed import features
from newsfeed.metrics import engagement_score, gini, ndcg_at_k, top_share
from newsfeed.world import REACTIONS, SCALES, Dynamics, World, WorldConfig, legacy_ranker, simulate

EVAL_DAYS = 7  # the last week is the evaluation window of the ranking comparison
#: Chapter 11's world: the default config with harmful posts and a spam burst on.
CHAPTER_11 = {"harmful_share": 0.03, "spam_posts": 300}


def measure_scale(scale: str, overrides: dict[str, float] | None = None) -> dict[str, float]:
    """Generate one scale (with ``overrides`` of its config) in a subprocess; its wall time, peak memory (VmHWM:
    a fresh process's own high-water mark; ru_maxrss would carry over the parent's across exec) and table
    sizes."""
    code = (
        "import json, resource, time\n"
        "from newsfeed.world import WorldConfig, simulate\n"
        "t = time.perf_counter()\n"
        f"w = simulate(WorldConfig.at_scale({scale!r}, **{dict(overrides or {})!r}))\n"
        "seconds = time.perf_counter() - t\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(json.dumps({'seconds': seconds, 'peak_mb': int(hwm) / 1024,"
        " 'people': w.config.n_people, 'posts': len(w.posts), 'impressions': len(w.impressions)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def dynamics_cost(world: World, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Seconds (median of ``repeats``) of a rollout of the last week with each of ``Dynamics``' mechanisms on,
    and the ratio to the same rollout without them."""
    start = world.config.start_time + pd.Timedelta(days=world.config.n_days - EVAL_DAYS)
    sessions = world.sessions[world.sessions["started_at"] >= start]
    earlier = world.impressions[world.impressions["timestamp"] < start]
    everyone = frozenset(range(world.n_people))
    settings = {"off": None, "shares travel": Dynamics(shares_travel=True),
                "a product change for everyone": Dynamics(treated=everyone, share_prompt=6.0, novelty=0.5),
                "return rate": Dynamics(return_rate=True),
                "all": Dynamics(shares_travel=True, treated=everyone, share_prompt=6.0, novelty=0.5,
                                return_rate=True)}
    seconds = {}
    for name, dynamics in settings.items():
        times = []
        for _ in range(repeats):
            tick = time.perf_counter()
            world.rollout(legacy_ranker(0), sessions, earlier_impressions=earlier, dynamics=dynamics)
            times.append(time.perf_counter() - tick)
        seconds[name] = float(np.median(times))
    return {name: {"seconds": value, "ratio": value / seconds["off"]} for name, value in seconds.items()}


def popularity(world: World, impressions: pd.DataFrame) -> np.ndarray:
    """Each impression's post's smoothed engagement rate over the impressions logged before it (as chapter 4's
    popularity ranker scores it)."""
    counts = features.LogAggregates(impressions, world.posts).aggregates(impressions)
    return features.smoothed_rate(counts["post_engagement"], counts["post_impressions"],
                                  features.ENGAGEMENT_PRIOR).to_numpy()


def ranking_comparison(world: World, impressions: pd.DataFrame) -> dict[str, dict[str, float]]:
    """nDCG@10 of the weighted engagement per session of the last week, for the world's own ranking (the
    oracle: true expected engagement), popularity (smoothed engagement rate so far), random, and the legacy
    ranker's logged order. Sessions with one impression cannot be ranked and are left out.

    Two kinds of labels: ``counterfactual`` outcomes the world samples for each post as if it were shown at the
    top (free of position bias, which only a simulator can give), and the ``logged`` outcomes, which carry
    the legacy ranker's position bias (and so flatter the legacy order).
    """
    start = world.config.start_time + pd.Timedelta(days=world.config.n_days - EVAL_DAYS)
    in_window = (impressions["timestamp"] >= start).to_numpy()
    test = impressions[in_window].reset_index(drop=True)
    test = test[test.groupby("session_id")["session_id"].transform("size") >= 2]
    args = (test["user_id"], test["post_id"], 1, test["timestamp"], test["device"])
    scores = {
        "oracle": engagement_score(world.probabilities(*args), prefix="p_").to_numpy(),
        "popularity": popularity(world, impressions)[in_window][test.index],
        "random": np.random.default_rng(0).random(len(test)),
        "legacy (logged order)": -test["position"].to_numpy(dtype=float),
    }
    labels = {"counterfactual": engagement_score(world.sample_outcomes(*args, seed=1)).to_numpy(),
              "logged": engagement_score(test).to_numpy()}
    groups = test["session_id"].to_numpy()
    return {label: {name: ndcg_at_k(groups, s, relevance, k=10) for name, s in scores.items()}
            for label, relevance in labels.items()}


def realism(world: World) -> dict[str, object]:
    impressions = world.impressions.drop_duplicates("impression_id").reset_index(drop=True)
    rates = {r: float(impressions[r].mean()) for r in REACTIONS}
    dwell = impressions["dwell_seconds"]
    positives = impressions[["click", "like", "comment", "share"]].sum(axis=1)
    per_post = positives.groupby(impressions["post_id"]).sum().reindex(world.posts["post_id"], fill_value=0)
    sessions_per_user = world.sessions.groupby("user_id").size().reindex(range(world.n_people), fill_value=0)
    ctr_by_position = impressions[impressions["position"] <= 10].groupby("position")["click"].mean()

    ndcg = ranking_comparison(world, impressions)
    return {
        "tables": {name: len(getattr(world, name)) for name in World.TABLES},
        "reaction_rates": rates,
        "dwell_seconds": {"median": float(dwell.median()), "p90": float(dwell.quantile(0.9)),
                          "p99": float(dwell.quantile(0.99)), "mean": float(dwell.mean())},
        "top1pct_post_engagement_share": top_share(per_post.to_numpy(), 0.01),
        "gini_sessions_per_user": gini(sessions_per_user.to_numpy()),
        "ctr_by_position": {int(k): float(v) for k, v in ctr_by_position.items()},
        "ndcg@10_last_week": ndcg,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--scales", default=",".join(SCALES), help="comma-separated scales to time")
    parser.add_argument("--scale", default="default", choices=list(SCALES),
                        help="the world whose realism is measured (default: default)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rollouts timed per setting of world.Dynamics, the median quoted (default: 3)")
    args = parser.parse_args()
    scales = [s for s in args.scales.split(",") if s]
    unknown = [s for s in scales if s not in SCALES]
    if unknown:
        parser.error(f"--scales: unknown {unknown}; accepts {', '.join(SCALES)}")
    if args.repeats < 1:
        parser.error(f"--repeats: {args.repeats}; accepts an integer >= 1")
    tick = time.perf_counter()
    world = simulate(WorldConfig.at_scale(args.scale))
    report: dict[str, object] = realism(world)
    report["realism_seconds"] = time.perf_counter() - tick
    report["realism_scale"] = args.scale
    report["scales"] = {scale: measure_scale(scale) for scale in scales}
    report["scales_with_chapter_11"] = {scale: measure_scale(scale, CHAPTER_11) for scale in scales}
    report["dynamics_last_week"] = dynamics_cost(world, args.repeats)
    report["benchmark_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Reaction rates per impression ({args.scale} world, duplicates removed)")
    print(pd.Series(report["reaction_rates"]).map("{:.2%}".format).to_string())
    print("\nDwell seconds:", ", ".join(f"{k} {v:.1f}" for k, v in report["dwell_seconds"].items()))
    print(f"Top 1% of posts hold {report['top1pct_post_engagement_share']:.1%} of clicks+likes+comments+shares")
    print(f"Gini of sessions per person: {report['gini_sessions_per_user']:.2f}")
    print("\nCTR by feed position:")
    print(pd.Series(report["ctr_by_position"]).map("{:.3f}".format).to_string())
    print("\nnDCG@10 of the weighted engagement per session, last week (labels: columns):")
    print(pd.DataFrame(report["ndcg@10_last_week"]).to_string(float_format="{:.3f}".format))
    print("\nGeneration cost by scale (fresh subprocess each):")
    print(pd.DataFrame(report["scales"]).T.to_string(float_format="{:,.1f}".format))
    print(f"\nThe same with chapter 11's harmful posts and spam burst on ({CHAPTER_11}):")
    print(pd.DataFrame(report["scales_with_chapter_11"]).T.to_string(float_format="{:,.1f}".format))
    print(f"\nA rollout of the last week ({args.scale} world) with world.Dynamics on, median of {args.repeats}:")
    print(pd.DataFrame(report["dynamics_last_week"]).T.to_string(float_format="{:,.2f}".format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
