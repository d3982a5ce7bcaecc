"""How does the two-tower source's nearest-neighbour index scale? Build time, query latency and recall@K against
exact search for faiss's exact, IVF and HNSW indexes (``newsfeed.serving.PostIndex``), on the default world's
posts (another world's with ``--scale``) and on a million posts.

    python benchmarks/retrieval.py                   # a table per size
    python benchmarks/retrieval.py --json            # {"k", "queries", "sizes": {"<posts>": {"exact": {...},
                                                     #   "ivf": {"<probe>": {...}}, "hnsw": {...}}}}
    python benchmarks/retrieval.py --posts 200000    # a smaller large size
    python benchmarks/retrieval.py --scale small --posts 10000 --queries 20 --k 50   # a quick run (the test suite's)

The large size is made by the trained post tower from posts drawn around the world's own: each takes a real
post's topic, media type and author, and its text vector plus Gaussian noise (a fifth of the text vectors'
spread), so the vectors cluster as real ones do. Queries are user-tower vectors of people with history. Each
query asks for ``--k`` neighbours alone, on one thread (a feed request asks for one user's neighbours); p50 and
p99 are over the queries, recall is the share of the exact top k an index returns. IVF has about 4 sqrt(n)
cells (a power of two) and is measured at several probe counts; HNSW links 32 neighbours per node and searches
keeping 2k candidates.
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np
import pandas as pd

from newsfeed import features, serving
from newsfeed.notebook import setup
from newsfeed.world import SCALES, load_world


def query_costs(index: serving.PostIndex, queries: np.ndarray, k: int,
                exact: np.ndarray | None) -> dict[str, float]:
    """p50/p99 milliseconds per single query, and recall@k against ``exact`` (the exact index's answers)."""
    times, found = [], []
    for query in queries:
        clock = time.perf_counter()
        ids, _ = index.search(query, k)
        times.append((time.perf_counter() - clock) * 1000)
        found.append(ids[0])
    row = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}
    if exact is not None:
        row["recall"] = float(np.mean([np.isin(e, f).mean() for e, f in zip(exact, found, strict=True)]))
    return row


def measure(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int, seed: int) -> dict:
    """Every index kind over ``vectors``: build seconds, and query costs at each setting."""
    lists = int(2 ** np.round(np.log2(4 * np.sqrt(len(ids)))))
    result: dict = {"posts": len(ids), "ivf_cells": lists}
    clock = time.perf_counter()
    exact = serving.PostIndex(vectors.shape[1], "exact")
    exact.add(ids, vectors)
    result["exact"] = {"build_s": time.perf_counter() - clock, **query_costs(exact, queries, k, None)}
    truth = np.stack([exact.search(q, k)[0][0] for q in queries])
    clock = time.perf_counter()
    ivf = serving.PostIndex(vectors.shape[1], "ivf", lists=lists, probe=1, seed=seed)
    ivf.add(ids, vectors)
    result["ivf"] = {"build_s": time.perf_counter() - clock}
    for probe in (8, 16, 32, 64):
        if probe <= lists:
            ivf.probe = probe
            result["ivf"][str(probe)] = query_costs(ivf, queries, k, truth)
    clock = time.perf_counter()
    hnsw = serving.PostIndex(vectors.shape[1], "hnsw", links=32, depth=2 * k)
    hnsw.add(ids, vectors)
    result["hnsw"] = {"build_s": time.perf_counter() - clock, **query_costs(hnsw, queries, k, truth)}
    return result


def synthetic_posts(model: serving.TwoTower, posts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Post-tower vectors of ``n`` posts drawn around ``posts`` (see the module's docstring)."""
    base = model.post_features(posts)
    text_columns = [c for c in base.columns if c.startswith("text_")]
    drawn = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    spread = base[text_columns].to_numpy().std(axis=0)
    drawn[text_columns] = drawn[text_columns].to_numpy() + rng.normal(size=(n, len(text_columns))) * spread / 5
    return np.vstack([model.embed_posts(drawn.iloc[lo:lo + 100_000]) for lo in range(0, n, 100_000)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--posts", type=int, default=1_000_000, help="the large size (default 1,000,000)")
    parser.add_argument("--queries", type=int, default=200, help="queries per index (default 200)")
    parser.add_argument("--k", type=int, default=500, help="neighbours per query (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", default="default", choices=list(SCALES),
                        help="the world whose posts and people are indexed (default: default)")
    args = parser.parse_args()
    for name, low in (("posts", 10_000), ("queries", 1), ("k", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name}={getattr(args, name)} is invalid: --{name} accepts an integer >= {low}")
    rng = setup(args.seed)
    faiss.omp_set_num_threads(1)
    world = load_world(args.scale, args.seed)
    dataset = features.build_dataset(world, seed=args.seed)
    model = serving.fit_retrieval(dataset, world.edges, world.n_people, world.n_accounts)
    before = dataset.posts.loc[dataset.posts["created_at"] < dataset.serve_at, "post_id"].to_numpy()
    people = np.array(sorted(model.known_users_))
    queries = model.user_vectors(rng.choice(people, size=args.queries, replace=len(people) < args.queries))
    sizes = {"world": (before, model.post_vectors(before))}
    sizes["large"] = (np.arange(args.posts, dtype=np.int64), synthetic_posts(model, before, args.posts, rng))
    result = {"k": args.k, "queries": args.queries, "threads": 1, "scale": args.scale, "sizes": {}}
    for name, (ids, vectors) in sizes.items():
        row = measure(ids, vectors, queries, min(args.k, len(ids)), args.seed)
        result["sizes"][str(len(ids))] = row
        if not args.json:
            table = {"exact": {"build s": row["exact"]["build_s"], "p50 ms": row["exact"]["p50_ms"],
                               "p99 ms": row["exact"]["p99_ms"], f"recall@{args.k}": 1.0}}
            for probe, costs in row["ivf"].items():
                if probe != "build_s":
                    table[f"IVF {row['ivf_cells']} cells, {probe} probed"] = {
                        "build s": row["ivf"]["build_s"], "p50 ms": costs["p50_ms"], "p99 ms": costs["p99_ms"],
                        f"recall@{args.k}": costs["recall"]}
            table["HNSW 32 links"] = {"build s": row["hnsw"]["build_s"], "p50 ms": row["hnsw"]["p50_ms"],
                                      "p99 ms": row["hnsw"]["p99_ms"], f"recall@{args.k}": row["hnsw"]["recall"]}
            print(f"\n{name}: {len(ids):,} posts, {args.queries} queries, k = {args.k}, one thread")
            print(pd.DataFrame(table).T.round(3).to_string())
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
