"""The Open Bandit Dataset's small sample (data/open_bandit/README.md): real logs of two policies, with
propensities, on which the estimators of ``offpolicy.estimators`` can be checked against a logged truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from newsfeed.offpolicy.estimators import checked_array, estimates
from newsfeed.validation import require

OPEN_BANDIT = Path(__file__).resolve().parents[2] / "data" / "open_bandit"


def open_bandit(policy: str) -> pd.DataFrame:
    """The 10,000 logged impressions of ``policy`` (``"random"`` or ``"bts"``, Bernoulli Thompson sampling):
    ``item_id``, ``position`` (1-3), ``click``, the logging policy's ``propensity_score``, and the context."""
    require("policy", policy, policy in ("random", "bts"), "'random' or 'bts'")
    return pd.read_csv(OPEN_BANDIT / f"{policy}_all.csv.gz", index_col=0)


def thompson_distribution(alpha: npt.ArrayLike, beta: npt.ArrayLike, positions: int = 3, samples: int = 20_000,
                          seed: int = 0) -> np.ndarray:
    """Bernoulli Thompson sampling's probability of showing each item at each position, ``(items, positions)``:
    each draw samples every item's click rate from its Beta(``alpha``, ``beta``) and shows the highest
    ``positions`` in order; the share of ``samples`` draws that put item a at position k estimates it."""
    alpha, beta = checked_array("alpha", alpha, None, True), checked_array("beta", beta, None, True)
    require("beta", f"{len(beta)} values", len(beta) == len(alpha), f"one per item ({len(alpha)})")
    require("positions", positions, isinstance(positions, int) and 1 <= positions <= len(alpha),
            f"an integer from 1 to the {len(alpha)} items")
    rng = np.random.default_rng(seed)
    draws = rng.beta(alpha, beta, size=(samples, len(alpha)))
    shown = np.argsort(-draws, axis=1, kind="stable")[:, :positions]
    counts = np.zeros((len(alpha), positions))
    for position in range(positions):
        counts[:, position] = np.bincount(shown[:, position], minlength=len(alpha))
    return counts / samples


def thompson_from_random_logs(prior_rows: float = 50.0, samples: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Bernoulli Thompson sampling's click rate per impression, estimated four ways (``estimates``) from the
    uniform-random policy's logs, beside the rate Thompson sampling logged itself, each with its standard error.

    The target probabilities are ``thompson_distribution`` of the production prior (``bts_prior.csv``). The
    direct method's reward model is fitted on the same random logs: each (item, position)'s click rate, shrunk
    toward its position's rate as if ``prior_rows`` more impressions had shown it at that rate (about 40 rows and
    no click at all for most cells: without shrinking, most items would be predicted never to be clicked)."""
    require("prior_rows", prior_rows, isinstance(prior_rows, int | float) and prior_rows > 0, "a number > 0")
    random_log, thompson_log = open_bandit("random"), open_bandit("bts")
    prior = pd.read_csv(OPEN_BANDIT / "bts_prior.csv")
    shown = thompson_distribution(prior["alpha"], prior["beta"], positions=3, samples=samples, seed=seed)
    item, slot = random_log["item_id"].to_numpy(), random_log["position"].to_numpy() - 1
    rewards = random_log["click"].to_numpy(float)
    clicks, rows = np.zeros(shown.shape), np.zeros(shown.shape)
    np.add.at(clicks, (item, slot), rewards)
    np.add.at(rows, (item, slot), 1.0)
    position_rate = clicks.sum(axis=0) / rows.sum(axis=0)
    model = (clicks + prior_rows * position_rate) / (rows + prior_rows)
    found = estimates(rewards, shown[item, slot], random_log["propensity_score"], model[item, slot],
                      (shown * model).sum(axis=0)[slot])
    logged = thompson_log["click"]
    found.loc["logged by Thompson sampling"] = [logged.mean(), logged.std(ddof=1) / np.sqrt(len(logged))]
    return found
