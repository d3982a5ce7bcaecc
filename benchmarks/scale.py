"""Where does the cluster pay? Chapter 3's point-in-time aggregates (every impression's eight tables of running
sums, as of the moment before it) computed by pandas, DuckDB and Dask with one and two workers, at two sizes.

    python benchmarks/scale.py                     # a table per size
    python benchmarks/scale.py --json              # {"sizes": {"<impressions>": {"<engine>": {...}}}, ...}
    python benchmarks/scale.py --copies 2 10       # other sizes, in copies of the default world
    python benchmarks/scale.py --scale small --copies 1 --engines duckdb --past-memory-copies 1 --cap-mb 2000
                                                   # a quick run (the test suite's)

The sizes are copies of the default world's log side by side: copy i shifts every user, author and post id by
i times the world's, so the copies never share a key and each is a real world's traffic; ``--copies 1 38``
(the default) gives about 270 thousand and 10.4 million impressions; ``--scale`` tiles another world's log instead
(``small``: about 50 thousand impressions a copy). Each engine runs in its own process, so
its time and peak memory (the process's high-water mark, and the workers' for Dask) are its own; the inputs
are built before the clock starts (for Dask, the log is written as event files its workers read). A run that
fails (out of memory, say) is reported with its error, not hidden.

"past_memory": the same job past one process's memory (``newsfeed.scaling.capped.past_memory``, as chapter 8 runs
it). ``--past-memory-copies`` copies of the log (16 by default, about 4.4 million impressions) are written as
event files; pandas computes every impression's aggregates in one process without a cap (the reference, and the
memory it needs), then again with every process held to ``--cap-mb`` megabytes resident (1,000 by default: killed
as soon as it holds more); then ``--workers`` Dask workers (2) with the same cap per process (the driver's too,
and Dask's own limit per worker, past which it spills to disk) read the files, shuffle into ``--partitions``
partitions and write the result themselves. Reported: each run's seconds, peak resident memory and outcome, each
worker's peak and bytes spilled, and whether Dask's table equals the uncapped pandas table to the bit.
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
import json, sys, tempfile, time
from pathlib import Path
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
    rows, extra = len(log), {}
    start = time.perf_counter()
    if engine == "pandas":
        features.LogAggregates(log, posts).aggregates(log)
    elif engine == "duckdb":
        scaling.DuckDBAggregates(log, posts).aggregates(log)
    else:
        # The log lands in event files first, as a logging pipeline writes it (not timed); the workers read
        # them and write the result themselves, so this process holds neither.
        with tempfile.TemporaryDirectory() as scratch:
            events = scaling.write_events(log, posts, Path(scratch) / "events", files=partitions)
            del log, posts
            start = time.perf_counter()
            client = scaling.make_client(workers=int(engine.split("-")[1]), memory_limit="8GiB")
            started = time.perf_counter()
            scaling.DaskAggregates(events, client, partitions=partitions).write_log_aggregates(Path(scratch) / "out")
            memory = client.run(lambda dask_worker: dask_worker.monitor.get_process_memory())
            extra = {"worker_memory_mb": max(memory.values()) / 1e6, "cluster_start_s": started - start}
            client.close()
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds,
                      "peak_mb": high_water_mb(), **extra}))

if __name__ == "__main__":
    main()
"""

#: The past-memory run: the tiled log written as event files, then ``capped.past_memory`` (one JSON line).
PAST_MEMORY = """
import json, sys, tempfile
from pathlib import Path
from benchmarks_scale_inputs import tiled

def main():
    from newsfeed import scaling
    from newsfeed.scaling import capped
    copies, scale, cap, workers, partitions, timeout = sys.argv[1:7]
    log, posts = tiled(int(copies), scale)
    with tempfile.TemporaryDirectory() as scratch:
        events = scaling.write_events(log, posts, Path(scratch) / "events", files=int(partitions))
        del log, posts
        print(json.dumps(capped.past_memory(events, float(cap), int(workers), int(partitions), float(timeout))))

if __name__ == "__main__":
    main()
"""

#: The inputs, importable by the runner (a module, so Dask's worker processes can import what it pickles).
INPUTS = """
from newsfeed import features, scaling
from newsfeed.world import load_world

def tiled(copies, scale):
    world = load_world(scale, 0)
    dataset = features.build_dataset(world, seed=0)
    return scaling.tile_log(dataset.log, dataset.posts, copies, world.n_accounts)
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
    parser.add_argument("--past-memory-copies", type=int, default=16,
                        help="copies of the log for the past-memory run (default 16; 0 skips it)")
    parser.add_argument("--cap-mb", type=float, default=1000.0,
                        help="the past-memory run's cap on each process's resident memory, MB (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers of the past-memory run (default 2)")
    parser.add_argument("--partitions", type=int, default=None,
                        help="partitions of the past-memory run (default: 8 per copy, at least 16)")
    args = parser.parse_args()
    if args.past_memory_copies < 0:
        parser.error(f"--past-memory-copies={args.past_memory_copies} is invalid: it accepts an integer >= 0")
    if not 0 < args.cap_mb <= 1e6:
        parser.error(f"--cap-mb={args.cap_mb} is invalid: --cap-mb accepts a number in (0, 1000000]")
    if args.workers < 1:
        parser.error(f"--workers={args.workers} is invalid: --workers accepts an integer >= 1")
    if args.partitions is not None and args.partitions < 1:
        parser.error(f"--partitions={args.partitions} is invalid: --partitions accepts an integer >= 1")
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
        if args.past_memory_copies:
            (folder / "past_memory.py").write_text(PAST_MEMORY)
            partitions = args.partitions or max(16, 8 * args.past_memory_copies)
            done = subprocess.run([sys.executable, str(folder / "past_memory.py"), str(args.past_memory_copies),
                                   args.scale, str(args.cap_mb), str(args.workers), str(partitions),
                                   str(args.timeout)], cwd=folder, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": f"{folder}:{ROOT}", "PYTHONHASHSEED": "0"})
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            result["past_memory"] = (json.loads(lines[-1]) if done.returncode == 0 and lines else
                                     {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]})
            if not args.json:
                print(f"past memory: {json.dumps(result['past_memory'], indent=1)}", flush=True)
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
