"""How much traffic does the feed service take? Its capacity curve: an open-loop client offers a rate of feed
requests to service processes on 127.0.0.1 and reads what they achieve, with what latency and errors.

Open loop: each request leaves at its time whatever the answers before it, as independent users arrive, and its
latency counts from that time, so a service that falls behind shows it (a closed loop, where a client waits for
each answer before the next request, slows down with the service and hides the queue). The **knee** is the
highest offered rate answered in full at 95% of its rate or better. Everything is bounded: only 127.0.0.1 is
addressed, a curve sends rate x seconds requests per point, each waits at most ``timeout`` seconds, and the
services are stopped when the curve ends, also on an error.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from newsfeed.validation import is_number, require

ROOT = Path(__file__).resolve().parents[2]
#: The most a point of a curve may ask for: requests per second, and seconds.
MAX_RATE, MAX_SECONDS = 500.0, 120.0


def free_ports(count: int) -> list[int]:
    """``count`` ports on 127.0.0.1 that nothing listens on now (the system picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for one in sockets:
            one.bind(("127.0.0.1", 0))
        return [one.getsockname()[1] for one in sockets]
    finally:
        for one in sockets:
            one.close()


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail if the process exits or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with code {process.returncode} before it was ready; its "
                               f"last words: {_log_tail(process)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the service did not answer {url} within {timeout:.0f} s")


def _log_tail(process: subprocess.Popen, characters: int = 2000) -> str:
    """The end of what a service wrote to its error stream (kept in a temporary file, not in the caller's output:
    a service past its knee warns of every refused connection)."""
    log = getattr(process, "error_log", None)
    if log is None:
        return "(not kept)"
    log.seek(0)
    return log.read().decode(errors="replace")[-characters:]


def start_services(scale: str, seed: int, ports: Sequence[int],
                   first_cpu: int | None = None) -> list[subprocess.Popen]:
    """One service process (``python -m newsfeed.serving``) on 127.0.0.1 per port, each pinned to its own CPU
    (``first_cpu`` first), as instances behind a load balancer run; single-threaded math, as everywhere. Each
    one's error stream goes to a temporary file, read back only if it fails to start."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    cpus = sorted(os.sched_getaffinity(0), key=lambda cpu: cpu != first_cpu)
    services = []
    for k, port in enumerate(ports):
        command = [sys.executable, "-m", "newsfeed.serving", "--scale", scale, "--seed", str(seed),
                   "--host", "127.0.0.1", "--port", str(port)]
        cpu = cpus[k % len(cpus)]
        log = tempfile.TemporaryFile()
        service = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
                                   preexec_fn=lambda cpu=cpu: os.sched_setaffinity(0, {cpu}))
        service.error_log = log  # type: ignore[attr-defined]
        services.append(service)
    return services


def stop_services(services: Sequence[subprocess.Popen]) -> None:
    for service in services:
        service.terminate()
    for service in services:
        try:
            service.wait(timeout=20)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        log = getattr(service, "error_log", None)
        if log is not None:
            log.close()


@contextmanager
def running(scale: str, seed: int, count: int, timeout: float = 600.0) -> Iterator[list[str]]:
    """``count`` service processes, ready: their base URLs, the processes stopped on leaving."""
    ports = free_ports(count)
    services = start_services(scale, seed, ports)
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base, service in zip(bases, services, strict=True):
            wait_until_ready(f"{base}/health", service, timeout)
        yield bases
    finally:
        stop_services(services)


def one_request(url: str, due: float, timeout: float) -> tuple[str, float]:
    """GET ``url``: its HTTP status (or the error that left it unanswered) and the milliseconds from ``due``, the
    moment it was meant to leave, to its answer (so a request the client could not send on time counts its wait)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            answer.read()
            outcome = str(answer.status)
    except urllib.error.HTTPError as error:
        outcome = str(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        outcome = type(error).__name__
    return outcome, (time.perf_counter() - due) * 1000


def offered_load(bases: Sequence[str], users: Sequence[int], rate: float, seconds: float, seed: int = 0,
                 timeout: float = 5.0) -> dict[str, float]:
    """An open-loop load: ``rate`` feed requests a second for ``seconds``, each sent at its time whatever the
    answers before it, round-robin over the services at ``bases``, for users drawn from ``users``. Returns the
    offered and achieved rates, the answered requests' p50 and p99 (from each request's due time), and the errors
    (any answer but 200, or none within ``timeout`` seconds). Bounded: ``rate * seconds`` requests."""
    require("rate", rate, is_number(rate) and 0 < rate <= MAX_RATE,
            f"a number of requests a second in (0, {MAX_RATE:g}]")
    require("seconds", seconds, is_number(seconds) and 0 < seconds <= MAX_SECONDS,
            f"a number in (0, {MAX_SECONDS:g}]")
    require("users", f"{len(users)} users", len(users) > 0, "one or more user ids")
    require("bases", bases, bool(bases) and all(b.startswith("http://127.0.0.1:") for b in bases),
            "one or more http://127.0.0.1:<port> addresses (a load test addresses only this machine)")
    count = max(1, round(rate * seconds))
    chosen = np.random.default_rng(seed).choice(np.asarray(users), size=count)
    with ThreadPoolExecutor(max_workers=min(count, 128)) as pool:
        start = time.perf_counter()
        futures = []
        for k in range(count):
            due = start + k / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            url = f"{bases[k % len(bases)]}/feed/{int(chosen[k])}?limit=10"
            futures.append(pool.submit(one_request, url, due, timeout))
        outcomes = [future.result() for future in futures]
        # The offered window at least: a service that keeps up answers count / rate requests a second.
        elapsed = max(time.perf_counter() - start, count / rate)
    answered = [ms for outcome, ms in outcomes if outcome == "200"]
    return {"offered_per_second": rate, "requests": count, "seconds": elapsed,
            "achieved_per_second": len(answered) / elapsed, "errors": sum(o != "200" for o, _ in outcomes),
            "p50_ms": float(np.percentile(answered, 50)) if answered else float("nan"),
            "p99_ms": float(np.percentile(answered, 99)) if answered else float("nan")}


def knee(curve: Sequence[dict[str, float]]) -> float:
    """The highest offered rate the service keeps up with: every request answered with 200, and the achieved rate
    within 5% of the offered one (0 if none)."""
    kept = [point["offered_per_second"] for point in curve
            if point["errors"] == 0 and point["achieved_per_second"] >= 0.95 * point["offered_per_second"]]
    return max(kept, default=0.0)


def capacity_curve(scale: str, seed: int, users: Sequence[int], rates: Sequence[float], seconds: float,
                   workers: Sequence[int] = (1, 2), warm_up: float = 1.0) -> pd.DataFrame:
    """The capacity curve with each number of service processes in ``workers`` (all started at once, each on its
    own CPU; a curve with w processes spreads its requests over the first w): a row per (processes, offered
    rate), each offered for ``seconds`` after ``warm_up`` seconds at the lowest rate (not kept)."""
    require("workers", workers, bool(workers) and all(isinstance(w, int) and 1 <= w <= len(os.sched_getaffinity(0))
                                                        for w in workers),
            f"integers from 1 to the {len(os.sched_getaffinity(0))} CPUs this process may use")
    require("rates", rates, bool(rates) and all(is_number(r) and 0 < r <= MAX_RATE for r in rates),
            f"numbers of requests a second in (0, {MAX_RATE:g}]")
    rows = {}
    with running(scale, seed, max(workers)) as bases:
        for count in workers:
            offered_load(bases[:count], users, min(rates), warm_up, seed)  # caches warmed, not kept
            for k, rate in enumerate(rates):
                rows[(count, rate)] = offered_load(bases[:count], users, rate, seconds, seed + k)
    return pd.DataFrame(rows).T.rename_axis(["processes", "offered per second"])
