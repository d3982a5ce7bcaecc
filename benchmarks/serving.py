"""How fast is a feed request? Per-stage and end-to-end latency of ``newsfeed.serving.FeedServer`` on one CPU
thread, with the chapter-4 network as shipped and with its Linear layers dynamically quantized to int8, and
what quantization costs in quality on the test week.

    python benchmarks/serving.py           # tables
    python benchmarks/serving.py --json    # one object: {"p50_ms", "p95_ms", "p99_ms", "candidates",
                                           #  "requests", "stages": {...}, "quantized": {...}}

Latencies are end to end unless under "stages"; "candidates" is the mean number ranked per request. The
target is p99 <= 50 ms with >= 500 candidates.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from newsfeed import features, models, serving
from newsfeed.data import artifacts_folder, load_world
from newsfeed.metrics import engagement_score, ndcg_at_k
from newsfeed.notebook import setup
from newsfeed.world import REACTIONS


def quality(ranker: models.Ranker, test: pd.DataFrame, true_engagement: np.ndarray) -> dict[str, float]:
    """nDCG@10 per test session (true engagement as relevance) and ROC-AUC per reaction."""
    predicted = ranker.predict(models.serving_view(test))
    row = {"ndcg@10": ndcg_at_k(test["session_id"].to_numpy(), engagement_score(predicted, prefix="p_").to_numpy(),
                                true_engagement, 10)}
    for reaction in REACTIONS:
        row[f"auc_{reaction}"] = float(roc_auc_score(test[reaction], predicted[f"p_{reaction}"]))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--requests", type=int, default=300, help="feed requests to time (default 300)")
    parser.add_argument("--scale", default="default", help="world scale (default: default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.requests < 1:
        parser.error(f"--requests={args.requests} is invalid: --requests accepts an integer >= 1")
    rng = setup(args.seed)
    torch.set_num_threads(1)
    world = load_world(args.scale, args.seed)
    dataset = features.build_dataset(world, seed=args.seed)
    network = models.final_multitask(dataset, artifacts_folder(args.scale, args.seed))
    server = serving.build_server(network, dataset, world.posts, world.edges)
    warm = sorted(u for u in server.known_users if not server.is_cold(u))
    users = rng.choice(warm, size=args.requests, replace=len(warm) < args.requests)

    test = dataset.part("test")
    true_engagement = engagement_score(world.probabilities(test["user_id"], test["post_id"], 1, test["timestamp"],
                                                           test["device"]), prefix="p_").to_numpy()
    result: dict[str, object] = {}
    for name, ranker in (("float32", network), ("int8", serving.quantized(network))):
        server.ranker = ranker
        table, counts = serving.measure_latency(server, users)
        entry = {"p50_ms": float(table.at["end to end", "p50_ms"]), "p95_ms": float(table.at["end to end", "p95_ms"]),
                 "p99_ms": float(table.at["end to end", "p99_ms"]), "candidates": float(np.mean(counts)),
                 "min_candidates": int(np.min(counts)), "requests": len(users),
                 "stages": {stage: row.to_dict() for stage, row in table.iterrows()},
                 "quality": quality(ranker, test, true_engagement)}
        result[name] = entry
        if not args.json:
            print(f"\n{name}: {entry['candidates']:.0f} candidates per request on average "
                  f"(min {entry['min_candidates']}), {len(users)} requests")
            print(table.round(2).to_string())
    summary = {**{k: v for k, v in result["float32"].items()}, "quantized": result["int8"]}  # type: ignore[union-attr]
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        quality_table = pd.DataFrame({name: entry["quality"] for name, entry in result.items()})  # type: ignore[index]
        quality_table["int8 - float32"] = quality_table["int8"] - quality_table["float32"]
        print("\nquality on the test week\n" + quality_table.round(4).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
