"""Scaling the system past one machine (chapter 8): the same feature pipeline on a single-machine SQL engine
and on a distributed one, data-parallel training, fan-out of posts to feeds, and a capacity model fed by the
costs the book measured.

- ``pipeline``: ``DuckDBAggregates`` and ``DaskAggregates`` (point-in-time aggregates, each an
  ``AggregateSource`` that ``features.feature_table`` reads) and ``make_client`` (a local cluster or a
  scheduler's address);
- ``training``: ``fit_data_parallel`` (chapter 4's network trained by several processes with
  ``torch.distributed``) and ``epoch_seconds_single``;
- ``fanout``: ``fanout_costs`` (push on write, pull on read, and the hybrid, counted on a world);
- ``capacity``: ``UnitCosts``, ``fleet`` and ``sensitivity``.
"""

from newsfeed.scaling.capacity import UnitCosts, fleet, sensitivity
from newsfeed.scaling.fanout import audience, fanout_costs
from newsfeed.scaling.pipeline import DaskAggregates, DuckDBAggregates, make_client
from newsfeed.scaling.training import epoch_seconds_single, fit_data_parallel

__all__ = ["DaskAggregates", "DuckDBAggregates", "UnitCosts", "audience", "epoch_seconds_single",
           "fanout_costs", "fit_data_parallel", "fleet", "make_client", "sensitivity"]
