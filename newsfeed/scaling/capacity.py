"""The capacity model: chapter 1's traffic assumptions times unit costs measured in this book, as fleet sizes.

Chapter 1 estimated from assumed costs (FLOPs per candidate, a core's FLOPs per second). Here the costs are the
ones the book measured on its own system: CPU-milliseconds per feed request as a fixed part plus a part per
candidate (chapter 6's server), bytes per feature-store row, and training rows per core-second (this chapter's
data-parallel run). ``fleet`` turns them into cores and bytes at chapter 1's peak traffic; ``sensitivity``
doubles and halves each input in turn, to show which one the answer depends on most.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

from newsfeed.estimates import Assumptions, estimate
from newsfeed.validation import require, require_float, require_int, require_known


@dataclass(frozen=True)
class UnitCosts:
    """What one unit of work costs, measured on this book's system (one CPU core)."""

    request_ms: float  # CPU-ms per request, whatever its candidates (the user's reads, one model call)
    candidate_ms: float  # CPU-ms per candidate the heavy ranker scores (its features, its share of the model)
    light_candidate_ms: float  # CPU-ms per candidate the light ranker scores
    store_bytes_per_row: float  # bytes per feature-store row (one key's aggregates)
    train_rows_per_core_second: float  # training rows one core processes per second
    heavy_candidates: int = 300  # candidates the light ranker passes on
    utilization: float = 0.5  # the share of a core a serving fleet plans to use (headroom for peaks and failures)
    training_hours: float = 4.0  # a day's logs must train within this many hours

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if field.name != "heavy_candidates":
                require_float(field.name, getattr(self, field.name), 0.0, open_lo=True)
        require_int("heavy_candidates", self.heavy_candidates, lo=1)
        require_float("utilization", self.utilization, 0.0, 1.0, open_lo=True)


def fleet(assumptions: Assumptions, costs: UnitCosts) -> pd.Series:
    """Serving cores, feature-store bytes and training cores at the assumed peak traffic. The store holds a row
    per (user, connection) pair, the rows that dominate it (chapter 1), so ``connections_per_user`` rows a user."""
    traffic = estimate(assumptions)
    candidates = assumptions.candidates_per_request
    request_cpu_ms = (costs.request_ms + costs.light_candidate_ms * candidates
                      + costs.candidate_ms * min(costs.heavy_candidates, candidates))
    serving = traffic.peak_requests_per_second * request_cpu_ms / 1000 / costs.utilization
    store = assumptions.daily_active_users * assumptions.connections_per_user * costs.store_bytes_per_row
    training = traffic.impressions_per_day / (costs.train_rows_per_core_second * costs.training_hours * 3600)
    return pd.Series({"CPU-ms per request": request_cpu_ms, "serving cores": serving,
                      "feature store bytes": store, "training cores": training})


def sensitivity(assumptions: Assumptions, costs: UnitCosts, names: list[str], factor: float = 2.0) -> pd.DataFrame:
    """The serving and training cores when each named input (an assumption or a unit cost) is multiplied by
    ``factor`` and divided by it, as ratios of the baseline."""
    inputs = [field.name for field in (*dataclasses.fields(assumptions), *dataclasses.fields(costs))]
    require_known("names", names, inputs, "inputs of the capacity model (fields of Assumptions or UnitCosts)")
    require_float("factor", factor, 0.0, open_lo=True)
    require("factor", factor, factor != 1.0, "a number above 0 other than 1 (1 changes nothing)")
    base = fleet(assumptions, costs)
    rows = {}
    for name in names:
        for label, scale in ((f"x{factor:g}", factor), (f"/{factor:g}", 1 / factor)):
            if hasattr(assumptions, name):
                changed = fleet(dataclasses.replace(assumptions, **{name: getattr(assumptions, name) * scale}), costs)
            else:
                value = getattr(costs, name) * scale
                changed = fleet(assumptions, dataclasses.replace(costs, **{name: type(getattr(costs, name))(value)}))
            rows[(name, label)] = (changed[["serving cores", "training cores"]] / base[["serving cores",
                                                                                        "training cores"]])
    return pd.DataFrame(rows).T.rename_axis(["input", "change"]).astype(float)
