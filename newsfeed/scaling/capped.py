"""Past one process's memory: chapter 3's aggregates of a whole log computed in one pandas process and by Dask
workers, each process held under the same memory cap, as a container's limit would hold it.

``run_capped`` runs a command and kills it as soon as any one of its processes holds more resident memory than
the cap (an out-of-memory kill, observed rather than provoked by the machine running out). ``python -m
newsfeed.scaling.capped`` runs one side of the comparison on event files ``pipeline.write_events`` wrote:

- ``pandas EVENTS OUT``: ``pipeline.log_aggregates_in_one_process``, the whole log in one process;
- ``dask EVENTS OUT --workers N --memory-limit MB --partitions P [--scheduler ADDRESS]``: the workers of a local
  cluster (or of the cluster at ``ADDRESS``) read the files, shuffle, and write the result themselves, each
  worker's memory held to the limit by Dask (it spills to disk past 60% of it and restarts a worker past 95%);
  it prints each worker's peak resident memory and the bytes it spilled, and this process's own peak.

``past_memory`` runs both under a cap and checks that what Dask wrote equals the uncapped pandas run's table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from newsfeed.validation import require_float


@dataclass(frozen=True)
class CappedRun:
    """How a command ran under the cap: whether it finished (exit code 0), whether it was killed for holding
    more than ``cap_mb``, its seconds, the largest resident memory any one of its processes held (as polled),
    and its last line of output (a JSON report) or of errors."""

    finished: bool
    killed: bool
    seconds: float
    peak_mb: float
    cap_mb: float | None
    last_line: str


def run_capped(arguments: list[str], cap_mb: float | None, timeout: float, poll_seconds: float = 0.02,
               env: dict[str, str] | None = None) -> CappedRun:
    """Run ``arguments``; kill the process and its children when one of them holds more than ``cap_mb``
    megabytes resident (``None``: no cap, only measured) or when ``timeout`` seconds have passed."""
    import psutil

    if cap_mb is not None:
        require_float("cap_mb", cap_mb, 0.0, open_lo=True)
    require_float("timeout", timeout, 0.0, open_lo=True)
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as output, tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(arguments, stdout=output, stderr=errors, env=env)
        root, peak, killed = psutil.Process(process.pid), 0.0, False
        while process.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                largest = max(p.memory_info().rss for p in tree) / 1e6
            except psutil.Error:  # a process ended between the listing and the reading
                continue
            peak = max(peak, largest)
            over = cap_mb is not None and largest > cap_mb
            if over or time.monotonic() - start > timeout:
                killed = over
                _kill(tree)
                break
            time.sleep(poll_seconds)
        process.wait()
        seconds = time.monotonic() - start
        output.seek(0)
        errors.seek(0)
        lines = output.read().splitlines() if process.returncode == 0 else errors.read().splitlines()
    last = next((line for line in reversed(lines) if line.strip()), "")
    if killed:
        last = f"killed: a process held more than the cap of {cap_mb:,.0f} MB"
    elif process.returncode != 0 and not last:
        last = f"stopped after {timeout:,.0f} s" if seconds > timeout else f"exit code {process.returncode}"
    return CappedRun(process.returncode == 0, killed, seconds, peak, cap_mb, last)


def _kill(tree: list) -> None:
    """Kill the processes, children first."""
    import psutil

    for process in reversed(tree):
        try:
            process.kill()
        except psutil.Error:
            pass


def past_memory(events: str | Path, cap_mb: float, workers: int = 2, partitions: int = 16,
                timeout: float = 1800.0, scheduler: str | None = None,
                out: str | Path | None = None) -> dict[str, object]:
    """Chapter 3's aggregates of the log in ``events`` three ways: pandas in one process without a cap (the
    reference, and what it needs), pandas under ``cap_mb``, and ``workers`` Dask workers (of a local cluster, or
    of the one at ``scheduler``) with each process (the driver, every worker) under ``cap_mb``; whether Dask's
    table equals the reference to the bit. Dask's table is kept in ``out`` if given (a new folder)."""
    from newsfeed.scaling.pipeline import read_events_meta, read_log_aggregates

    require_float("cap_mb", cap_mb, 0.0, open_lo=True)
    impressions = read_events_meta(events)["impressions"]  # refuses another folder before any run starts
    python = [sys.executable, "-m", "newsfeed.scaling.capped"]
    environment = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                   "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        out = {name: Path(scratch) / name for name in ("reference", "pandas")} | {
            "dask": Path(out) if out is not None else Path(scratch) / "dask"}
        for folder in out.values():
            folder.mkdir(parents=True)
        runs = {"pandas, no cap": run_capped([*python, "pandas", str(events), str(out["reference"])], None,
                                             timeout, env=environment),
                "pandas, capped": run_capped([*python, "pandas", str(events), str(out["pandas"])], cap_mb,
                                             timeout, env=environment),
                "dask, capped": run_capped([*python, "dask", str(events), str(out["dask"]), "--workers",
                                            str(workers), "--memory-limit", str(cap_mb), "--partitions",
                                            str(partitions), *(["--scheduler", scheduler] if scheduler else [])],
                                           cap_mb, timeout, env=environment)}
        identical = None
        if runs["dask, capped"].finished and runs["pandas, no cap"].finished:
            reference = read_log_aggregates(out["reference"])
            identical = bool(read_log_aggregates(out["dask"])[reference.columns].equals(reference))
    report: dict[str, object] = {name: asdict(run) for name, run in runs.items()}
    dask_run = runs["dask, capped"]
    if dask_run.finished:
        report["dask, capped"] = {**asdict(dask_run), **json.loads(dask_run.last_line)}
    return {"impressions": impressions, "cap_mb": cap_mb, "workers": workers, "partitions": partitions,
            "runs": report, "identical": identical}


def _high_water_mb() -> float:
    """This process's peak resident memory so far (Linux's VmHWM), in megabytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def _dask_job(events: str, out: str, workers: int, memory_limit_mb: float, partitions: int,
              scheduler: str | None) -> dict[str, object]:
    from newsfeed.scaling.pipeline import DaskAggregates, make_client

    client = make_client(scheduler, workers=workers, memory_limit=f"{memory_limit_mb:.0f}MB")
    try:
        DaskAggregates(events, client, partitions=partitions).write_log_aggregates(out)
        peaks = client.run(_high_water_mb)
        spilled = client.run(lambda dask_worker: dask_worker.data.cumulative_metrics.get(("disk-write", "bytes"),
                                                                                          0.0))
    finally:
        if scheduler is None:
            client.shutdown()  # the local cluster's workers too
        else:
            client.close()  # a real cluster outlives this job
    return {"worker_peak_mb": sorted(peaks.values()), "worker_spilled_mb": [v / 1e6 for v in spilled.values()],
            "memory_limit_mb": memory_limit_mb, "driver_peak_mb": _high_water_mb()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engine", choices=["pandas", "dask"])
    parser.add_argument("events", help="a folder pipeline.write_events wrote")
    parser.add_argument("out", help="an empty folder for the result")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", type=float, default=1000.0, help="each Dask worker's limit, MB")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--scheduler", default=None, help="a running Dask scheduler's address (a real cluster)")
    args = parser.parse_args()
    if args.engine == "pandas":
        from newsfeed.scaling.pipeline import log_aggregates_in_one_process

        log_aggregates_in_one_process(args.events, args.out)
        report: dict[str, object] = {"peak_mb": _high_water_mb()}
    else:
        report = _dask_job(args.events, args.out, args.workers, args.memory_limit, args.partitions, args.scheduler)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
