"""Back-of-envelope estimates for a news feed at the scale of a large social network.

The requirements step of the interview ends with a handful of numbers: feed requests per second at peak, the
compute and feature bytes each request costs, the weight of the logs and of the feature store. Those numbers
decide the architecture (a light retrieval stage before a heavy ranker, a feature store, sampled logs), so the
book computes them from *named* assumptions instead of typing them: change one assumption, and every estimate
that depends on it follows.

Use::

    from newsfeed.estimates import Assumptions, estimate
    estimate(Assumptions(daily_active_users=5e8)).table()
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from newsfeed.validation import is_number, require, require_int

SECONDS_PER_DAY = 86_400

#: The book's latency budget for one feed request, from the tap to posts on screen, at the 99th percentile
#: (milliseconds). Chapter 1 splits it into stages; chapter 6 and ``benchmarks/serving.py`` measure against it.
END_TO_END_P99_MS = 200
#: The heavy ranker's share of it.
RANKING_P99_MS = 50


def _assumption(default: float, low: float, high: float, unit: str, meaning: str) -> Any:
    """A dataclass field that carries its accepted range, its unit and what it means (for validation and tables)."""
    return field(default=default, metadata={"range": (low, high), "unit": unit, "meaning": meaning})


@dataclass(frozen=True)
class Assumptions:
    """Every number the estimates start from, named, with its unit; validated on creation.

    The defaults describe a large social network (billions of daily users). A value outside a field's range
    raises ``ValueError`` naming the field and the range it accepts; ``dataclasses.replace`` re-validates.
    """

    daily_active_users: float = _assumption(
        2e9, 1, 1e10, "people", "people who open the feed on a given day")
    feed_requests_per_user_per_day: float = _assumption(
        10, 0.01, 1_000, "requests/person/day", "feed loads per person, counting each 'load more'")
    peak_to_mean: float = _assumption(
        2.0, 1, 20, "ratio", "traffic of the busiest hour over the day's mean: capacity is sized for the peak")
    candidates_per_request: float = _assumption(
        1_500, 1, 1e8, "posts/request", "eligible unseen posts that could be ranked for one request")
    posts_shown_per_request: float = _assumption(
        10, 1, 1_000, "posts/request", "posts a request returns, each one a logged impression")
    user_features: float = _assumption(
        200, 0, 1e5, "features/user", "features of the viewer: profile, history aggregates, embeddings")
    post_features: float = _assumption(
        100, 0, 1e5, "features/post", "features of a post: content, author, engagement counters")
    pair_features: float = _assumption(
        20, 0, 1e5, "features/pair", "features of a (viewer, author) pair: closeness, past interactions")
    connections_per_user: float = _assumption(
        300, 0, 1e5, "authors/person", "friends and followed pages: the pairs that carry features")
    posts_per_user_per_day: float = _assumption(
        0.25, 0, 1_000, "posts/person/day", "new posts per daily active user (people and pages together)")
    candidate_window_days: float = _assumption(
        2, 0.01, 365, "days", "how long a post stays a candidate, so how long its features stay hot")
    bytes_per_feature: float = _assumption(
        4, 1, 1_024, "bytes", "one stored feature value (a float32)")
    bytes_per_impression: float = _assumption(
        200, 1, 1e6, "bytes", "one impression log row: ids, time, position, context, reactions, dwell")
    flops_per_candidate: float = _assumption(
        2e6, 1, 1e12, "FLOP", "cost of the heavy ranker scoring one candidate")
    flops_per_core_second: float = _assumption(
        2e10, 1e6, 1e15, "FLOP/s", "sustained throughput of one CPU core on that model")

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            low, high = spec.metadata["range"]
            require(spec.name, value, is_number(value) and low <= value <= high,
                    f"a number from {low:g} to {high:g} ({spec.metadata['unit']})")

    def table(self) -> pd.DataFrame:
        """One row per assumption: its value, unit and meaning (what the interviewer hears you state)."""
        rows = {spec.name: {"value": readable(getattr(self, spec.name), spec.metadata["unit"]),
                            "meaning": spec.metadata["meaning"]} for spec in fields(self)}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("assumption")


#: For each estimate: the attribute, the label a human reads, its unit, and how it is computed.
_ESTIMATES: tuple[tuple[str, str, str, str], ...] = (
    ("daily_active_users", "daily active users", "people", "assumed"),
    ("requests_per_day", "feed requests per day", "requests/day", "users × requests per user"),
    ("mean_requests_per_second", "feed requests per second, mean", "requests/s", "per day / 86,400"),
    ("peak_requests_per_second", "feed requests per second, peak", "requests/s", "mean × peak-to-mean"),
    ("candidates_per_request", "candidates per request", "posts", "assumed"),
    ("features_per_candidate", "features per candidate", "features", "user + post + pair features"),
    ("impressions_per_day", "impressions per day", "impressions/day", "requests × posts shown"),
    ("impression_log_bytes_per_day", "impression log per day", "B/day", "impressions × bytes each"),
    ("feature_store_bytes", "feature store size", "B",
     "(users + user-author pairs + live posts) × features × bytes"),
    ("feature_bytes_per_request", "feature bytes fetched per request", "B",
     "(user + candidates × (post + pair)) features × bytes"),
    ("feature_bytes_per_second_at_peak", "feature bytes fetched at peak", "B/s", "per request × peak requests/s"),
    ("ranking_flops_per_request", "ranking compute per request", "FLOP", "candidates × FLOP per candidate"),
    ("ranking_cpu_ms_per_request", "ranking CPU time per request", "CPU-ms", "FLOP / core throughput"),
    ("ranking_flops_per_second_at_peak", "ranking compute at peak", "FLOP/s", "per request × peak requests/s"),
    ("ranking_cores_at_peak", "ranking cores busy at peak", "cores", "compute at peak / core throughput"),
)


@dataclass(frozen=True)
class Estimates:
    """What the assumptions imply, in base units (people, requests, bytes, FLOP, seconds, milliseconds, cores)."""

    daily_active_users: float
    requests_per_day: float
    mean_requests_per_second: float
    peak_requests_per_second: float
    candidates_per_request: float
    features_per_candidate: float
    impressions_per_day: float
    impression_log_bytes_per_day: float
    feature_store_bytes: float
    feature_bytes_per_request: float
    feature_bytes_per_second_at_peak: float
    ranking_flops_per_request: float
    ranking_cpu_ms_per_request: float
    ranking_flops_per_second_at_peak: float
    ranking_cores_at_peak: float

    def table(self) -> pd.DataFrame:
        """One row per estimate: the value in base units, its unit, a human-readable value, and how it is computed."""
        rows = {label: {"value": getattr(self, name), "unit": unit, "readable": readable(getattr(self, name), unit),
                        "how": how} for name, label, unit, how in _ESTIMATES}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("estimate")


def estimate(assumptions: Assumptions) -> Estimates:
    """Traffic, logs, features and ranking compute implied by ``assumptions`` (a chain of multiplications).

    The feature store holds the features of every daily active user, of every (user, author) connection and of
    every post still inside the candidate window; a request fetches its viewer's features once and each
    candidate's post and pair features. Ranking cost is linear in the candidates, which is the point of the
    exercise: it is the term a light first stage exists to cut.
    """
    a = assumptions
    require("assumptions", a, isinstance(a, Assumptions), "an Assumptions instance")
    requests_per_day = a.daily_active_users * a.feed_requests_per_user_per_day
    mean_rps = requests_per_day / SECONDS_PER_DAY
    peak_rps = mean_rps * a.peak_to_mean
    impressions_per_day = requests_per_day * a.posts_shown_per_request
    live_posts = a.daily_active_users * a.posts_per_user_per_day * a.candidate_window_days
    stored_values = (a.daily_active_users * a.user_features
                     + a.daily_active_users * a.connections_per_user * a.pair_features
                     + live_posts * a.post_features)
    feature_bytes_per_request = a.bytes_per_feature * (
        a.user_features + a.candidates_per_request * (a.post_features + a.pair_features))
    flops_per_request = a.candidates_per_request * a.flops_per_candidate
    return Estimates(
        daily_active_users=a.daily_active_users,
        requests_per_day=requests_per_day,
        mean_requests_per_second=mean_rps,
        peak_requests_per_second=peak_rps,
        candidates_per_request=a.candidates_per_request,
        features_per_candidate=a.user_features + a.post_features + a.pair_features,
        impressions_per_day=impressions_per_day,
        impression_log_bytes_per_day=impressions_per_day * a.bytes_per_impression,
        feature_store_bytes=stored_values * a.bytes_per_feature,
        feature_bytes_per_request=feature_bytes_per_request,
        feature_bytes_per_second_at_peak=feature_bytes_per_request * peak_rps,
        ranking_flops_per_request=flops_per_request,
        ranking_cpu_ms_per_request=1_000 * flops_per_request / a.flops_per_core_second,
        ranking_flops_per_second_at_peak=flops_per_request * peak_rps,
        ranking_cores_at_peak=flops_per_request * peak_rps / a.flops_per_core_second,
    )


def max_candidates_within(latency_ms: float, flops_per_candidate: float, flops_per_core_second: float,
                          cores: int = 1) -> float:
    """How many candidates a model of ``flops_per_candidate`` can score in ``latency_ms`` on ``cores`` cores.

    The inverse of the ranking cost: it tells how many candidates the first stage must hand to the ranker.
    """
    for name, value in (("latency_ms", latency_ms), ("flops_per_candidate", flops_per_candidate),
                        ("flops_per_core_second", flops_per_core_second)):
        require(name, value, is_number(value) and value > 0, "a finite number > 0")
    require_int("cores", cores, lo=1)
    return latency_ms / 1_000 * flops_per_core_second * cores / flops_per_candidate


_SI_PREFIXES = ("", "k", "M", "G", "T", "P", "E")  # for bytes and FLOP: "35 TB/day", "3 GFLOP"
_COUNT_PREFIXES = ("", "k", "M", "bn", "tn")  # for counts: "1.2 M requests/s", "2 bn people"
_PLAIN_UNITS = ("ratio", "CPU-ms", "ms", "days", "bytes")


def readable(value: float, unit: str) -> str:
    """``value`` to three significant digits with the prefix a human reads: '1.2 M requests/s', '35 TB/day'.

    Bytes (units starting with ``B``) and FLOP take SI prefixes glued to the unit; plain units (milliseconds,
    days, bytes of one value) are printed as they are and a ratio as '2x'; anything else is a count (k, M, bn,
    tn).
    """
    require("value", value, is_number(value), "a finite number")
    rounded = float(f"{value:.3g}")
    if unit in _PLAIN_UNITS:
        text = f"{rounded:,.0f}" if abs(rounded) >= 1_000 else f"{rounded:g}"
        return f"{text}x" if unit == "ratio" else f"{text} {unit}"
    glued = unit.startswith("B") or unit.startswith("FLOP")
    prefixes = _SI_PREFIXES if glued else _COUNT_PREFIXES
    power = 0 if rounded == 0 else min(max(int(math.log10(abs(rounded)) // 3), 0), len(prefixes) - 1)
    scaled = rounded / 1_000**power
    if 0 < abs(scaled) < 1:  # small counts in plain decimals ('0.0246', not '2.46e-02')
        mantissa = f"{scaled:.{2 - math.floor(math.log10(abs(scaled)))}f}".rstrip("0").rstrip(".")
    else:
        mantissa = f"{scaled:.3g}"
    prefix = prefixes[power]
    if glued:
        return f"{mantissa} {prefix}{unit}"
    return f"{mantissa} {prefix} {unit}".replace("  ", " ").strip()


def latency_budget(end_to_end_ms: float = END_TO_END_P99_MS, ranking_ms: float = RANKING_P99_MS) -> pd.DataFrame:
    """Each stage's p99 budget in milliseconds, and why it needs that much; the last row, the network and the
    client, gets what the server stages leave of ``end_to_end_ms``. Raises ``ValueError`` when nothing is left.
    """
    require("end_to_end_ms", end_to_end_ms, is_number(end_to_end_ms) and end_to_end_ms > 0, "a number > 0")
    require("ranking_ms", ranking_ms, is_number(ranking_ms) and ranking_ms > 0, "a number > 0")
    stages = pd.DataFrame([
        ("retrieval, light ranking", 40, "indexes give thousands; a light model keeps hundreds"),
        ("feature fetch", 30, "one batched read of the viewer's and every candidate's features"),
        ("heavy ranking", ranking_ms, "the multi-task model scores the candidates left"),
        ("re-ranking", 15, "diversity, integrity filters and business rules on the top"),
        ("hydration", 15, "post text, media links and authors for the posts that are shown"),
    ], columns=["stage", "p99_ms", "why"])
    remainder = end_to_end_ms - stages["p99_ms"].sum()
    require("end_to_end_ms", end_to_end_ms, remainder > 0,
            f"more than the server stages' {stages['p99_ms'].sum()} ms (shrink a stage, or raise the budget)")
    stages.loc[len(stages)] = ("network, client", remainder, "transfer to the device, rendering")
    return stages


def server_budget_ms(stages: pd.DataFrame | None = None) -> float:
    """The server-side part of a latency budget: every stage but the network and the client."""
    stages = latency_budget() if stages is None else stages
    return float(stages.loc[stages["stage"] != "network, client", "p99_ms"].sum())
