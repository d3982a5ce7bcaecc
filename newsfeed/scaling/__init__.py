"""Scaling the system past one machine (chapter 8): the same feature pipeline on a single-machine SQL engine
and on a distributed one, data-parallel training, fan-out of posts to feeds, and a capacity model fed by the
costs the book measured.

- ``pipeline``: ``DuckDBAggregates`` and ``DaskAggregates`` (point-in-time aggregates, each an
  ``AggregateSource`` that ``features.feature_table`` reads; Dask's workers read the event files ``write_events``
  wrote, and ``write_log_aggregates`` has them write every impression's aggregates, past one process's memory),
  ``log_aggregates_in_one_process`` (the same job in one pandas process), ``read_log_aggregates``, ``tile_log`` and
  ``make_client`` (a local cluster or a scheduler's address);
- ``training``: ``fit_data_parallel`` (chapter 4's network trained by several processes with
  ``torch.distributed``) and ``epoch_seconds_single``;
- ``fanout``: ``fanout_costs`` (push on write, pull on read, and the hybrid, counted on a world);
- ``capacity``: ``UnitCosts``, ``fleet`` and ``sensitivity``.
"""

from newsfeed.scaling.capacity import UnitCosts, fleet, sensitivity
from newsfeed.scaling.fanout import audience, fanout_costs
from newsfeed.scaling.pipeline import (
    DaskAggregates,
    DuckDBAggregates,
    log_aggregates_in_one_process,
    make_client,
    read_log_aggregates,
    tile_log,
    write_events,
)

#: Imported when first asked for: training needs torch (some 200 MB resident), and every Dask worker that runs the
#: pipeline's functions imports this package; under a memory cap per process, that is memory the job cannot use.
_TRAINING = ("epoch_seconds_single", "fit_data_parallel")


def __getattr__(name: str) -> object:
    if name in _TRAINING:
        from newsfeed.scaling import training

        return getattr(training, name)
    raise AttributeError(f"module 'newsfeed.scaling' has no attribute {name!r}")


__all__ = ["DaskAggregates", "DuckDBAggregates", "UnitCosts", "audience", "epoch_seconds_single",
           "fanout_costs", "fit_data_parallel", "fleet", "log_aggregates_in_one_process", "make_client",
           "read_log_aggregates", "sensitivity", "tile_log", "write_events"]
