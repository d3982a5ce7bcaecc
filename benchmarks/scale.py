"""Where does the cluster pay? Chapter 3's point-in-time aggregates (every impression's eight tables of running
sums, as of the moment before it) computed by pandas, DuckDB and Dask with one and two workers, at two sizes.

    python benchmarks/scale.py                     # a table per size
    python benchmarks/scale.py --json              # {"sizes": {"<impressions>": {"<engine>": {...}}}, ...}
    python benchmarks/scale.py --copies 2 10       # other sizes, in copies of the default world
    python benchmarks/scale.py --scale small --copies 1 --engines duckdb   # a quick run (the test suite's)

The sizes are copies of the default world's log side by side: copy i shifts every user, author and post id by
i times the world's, so the copies never share a key and each is a real world's traffic; ``--copies 1 38``
(the default) gives about 270 thousand and 10.4 million impressions; ``--scale`` tiles another world's log instead
(``small``: about 50 thousand impressions a copy). Each engine runs in its own process, so
its time and peak memory (the process's high-water mark, and the workers' for Dask) are its own; the inputs
are built before the clock starts. A run that fails (out of memory, say) is reported with its error, not
hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("pandas", "duckdb", "dask-1", "dask-2")
#: The world scales (``newsfeed.world.SCALES``, named here so that this parent process imports no library).
SCALES = ("small", "default", "large")

#: Runs one engine on one size in a fresh process and prints one JSON line.
RUN = """
import json, sys, time
from newsfeed.notebook import setup
setup(0)
from benchmarks_scale_inputs import tiled
engine, copies, partitions, scale = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def high_water_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

def main():
    from newsfeed import features, scaling
    log, posts = tiled(copies, scale)
    extra = {}
    start = time.perf_counter()
    if engine == "pandas":
        features.LogAggregates(log, posts).aggregates(log)
    elif engine == "duckdb":
        scaling.DuckDBAggregates(log, posts).aggregates(log)
    else:
        client = scaling.make_client(workers=int(engine.split("-")[1]), memory_limit="8GiB")
        started = time.perf_counter()
        scaling.DaskAggregates(log, posts, client, partitions=partitions).aggregates(log)
        memory = client.run(lambda dask_worker: dask_worker.monitor.get_process_memory())
        extra = {"worker_memory_mb": max(memory.values()) / 1e6, "cluster_start_s": started - start}
        client.close()
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": len(log), "seconds": seconds, "rows_per_second": len(log) / seconds,
                      "peak_mb": high_water_mb(), **extra}))

if __name__ == "__main__":
    main()
"""

#: The inputs, importable by the runner (a module, so Dask's worker processes can import what it pickles).
INPUTS = """
import pandas as pd
from newsfeed import features
from newsfeed.world import load_world

def tiled(copies, scale):
    world = load_world(scale, 0)
    dataset = features.build_dataset(world, seed=0)
    log, posts = dataset.log, dataset.posts
    logs, all_posts = [], []
    for i in range(copies):
        logs.append(log.assign(user_id=log["user_id"] + i * world.n_accounts,
                               post_id=log["post_id"] + i * len(posts),
                               impression_id=log["impression_id"] + i * len(log)))
        all_posts.append(posts.assign(post_id=posts["post_id"] + i * len(posts),
                                      author_id=posts["author_id"] + i * world.n_accounts))
    return pd.concat(logs, ignore_index=True), pd.concat(all_posts, ignore_index=True)
"""


def run(engine: str, copies: int, folder: Path, timeout: float, scale: str = "default") -> dict:
    """One engine on one size, in a fresh process; its JSON line, or the error."""
    partitions = max(8, 8 * copies // 4)
    try:
        done = subprocess.run([sys.executable, str(folder / "run.py"), engine, str(copies), str(partitions), scale],
                              cwd=folder, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": f"{folder}:{ROOT}", "PYTHONHASHSEED": "0",
                                   "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["exit code " + str(done.returncode)])[-1]}
    return {**json.loads(lines[-1]), "partitions": partitions if engine.startswith("dask") else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 38],
                        help="sizes, in copies of the world's log (default: 1 38)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run (default 1800)")
    parser.add_argument("--scale", default="default", choices=SCALES,
                        help="the world whose log is tiled (default: default)")
    args = parser.parse_args()
    if any(c < 1 for c in args.copies):
        parser.error(f"--copies={args.copies} is invalid: --copies accepts integers >= 1")
    import tempfile

    result: dict = {"engines": list(args.engines), "scale": args.scale, "sizes": {}}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "run.py").write_text(RUN)
        (folder / "benchmarks_scale_inputs.py").write_text(INPUTS)
        for copies in args.copies:
            rows: dict = {}
            for engine in args.engines:
                clock = time.perf_counter()
                rows[engine] = {**run(engine, copies, folder, args.timeout, args.scale),
                                "wall_s_with_inputs": time.perf_counter() - clock}
                if not args.json:
                    print(f"{copies} copies, {engine}: {rows[engine]}", flush=True)
            size = next((r["rows"] for r in rows.values() if "rows" in r), copies)
            result["sizes"][str(size)] = rows
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        import pandas as pd

        for size, rows in result["sizes"].items():
            print(f"\n{int(size):,} impressions")
            print(pd.DataFrame(rows).T.drop(columns=["rows"], errors="ignore").to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
