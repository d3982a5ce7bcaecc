"""Chapter 4's network trained on labels that were only partly observed, with or without its position tower.

A logged reaction is seen only if something let it be seen: the user examined the post (position bias), or the
reaction has arrived by the time the model trains (delayed labels). If the chance of that is known, a label
divided by it is unbiased for the reaction's full-information rate, E[y / p] = rate (the relabeling of Saito et
al., 2020, with inverse propensities as in Joachims et al., 2017). ``Relabeled`` trains on those targets; without
its position tower and without relabeling it is the network that corrects for nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from newsfeed.models import MultiTask, MultiTaskConfig
from newsfeed.models.multitask import MultiTaskNetwork
from newsfeed.models.shipped import _source_files
from newsfeed.validation import is_number, require
from newsfeed.world import REACTIONS

#: A function from training rows to the probability that each row's label of each reaction was observed,
#: an array ``(rows, len(REACTIONS))`` of numbers in (0, 1].
Observed = Callable[[pd.DataFrame], np.ndarray]


class Relabeled(MultiTask):
    """``MultiTask`` whose reaction labels are divided by ``observed(rows)``, the probability that
    each was seen, and whose position tower is kept (``position_tower=True``, chapter 4's
    correction) or frozen at zero."""

    name = "relabeled network"

    def __init__(self, config: MultiTaskConfig | None = None, observed: Observed | None = None,
                 position_tower: bool = True,
                 progress: Callable[[str], None] | None = print) -> None:
        super().__init__(config, progress)
        require("observed", observed, observed is None or callable(observed),
                "None, or a function from rows to the probability each label was observed")
        require("position_tower", position_tower, isinstance(position_tower, bool), "True or False")
        self.observed, self.position_tower = observed, position_tower

    def new_network(self, n_dense: int) -> tuple[MultiTaskNetwork, torch.optim.Optimizer]:
        network, optimizer = super().new_network(n_dense)
        if not self.position_tower:  # starts at zero and, with no gradient, stays there
            network.position_bias.weight.requires_grad_(False)
        return network, optimizer

    def _labels(self, table: pd.DataFrame) -> tuple[Any, Any]:
        reactions, dwell = super()._labels(table)
        if self.observed is None:
            return reactions, dwell
        chance = np.asarray(self.observed(table), dtype=float)
        require("observed", f"a function returning {chance.shape} values for {len(table)} rows",
                chance.shape == (len(table), len(REACTIONS)),
                f"one value per row and reaction ({len(REACTIONS)})")
        require("observed", "a function returning values outside (0, 1]",
                bool(((chance > 0) & (chance <= 1)).all()), "probabilities > 0 and <= 1")
        return reactions / torch.tensor(chance, dtype=reactions.dtype), dwell


def examination(exponent: float, max_position: int) -> Observed:
    """The chance a row's post was examined, ``position ** -exponent`` (positions past ``max_position`` as that
    one, as the network's tower groups them), the same for every reaction: inverse-propensity labels."""
    require("exponent", exponent, is_number(exponent) and 0 <= exponent <= 5, "a number from 0 to 5")

    def observed(table: pd.DataFrame) -> np.ndarray:
        position = table["position"].clip(upper=max_position).to_numpy(dtype=float)
        return np.repeat((position ** -float(exponent))[:, None], len(REACTIONS), axis=1)

    return observed


def study_sources(study: str) -> list[Path]:
    """What a study's cached result depends on: the world, features and models (as a fitted network does), this
    module, the ``study``'s own (its file, e.g. ``__file__``), and the policies that serve its networks."""
    return [*_source_files(), Path(__file__), Path(study), Path(__file__).parents[1] / "policies.py"]
