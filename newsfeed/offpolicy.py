"""Learning from logged feedback: what logs with known randomness allow (the chapter after chapter 8, in
preparation).

Every model of the book learns from logs that a ranker chose, and position bias is in all of them: a post shown
lower is examined less, whatever it is. ``policies.shuffled_top`` randomizes the top slots of a share of sessions;
within those slots a post's position is then independent of the post, so how a reaction's rate falls with position
there is the examination curve itself (the swap intervention of Joachims et al., 2017).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from newsfeed.validation import require, require_columns
from newsfeed.world import REACTIONS


def position_curve(impressions: pd.DataFrame, randomized: npt.ArrayLike, top: int,
                   reaction: str = "click") -> pd.DataFrame:
    """Per position 1..``top`` of the ``randomized`` rows (a boolean per impression: its session's top slots were
    shuffled) in sessions that show all ``top`` of them, the impressions, the rate of ``reaction``, and that rate
    over position 1's: an estimate of how often a user examines position k relative to the top, with its standard
    error (delta method)."""
    require_columns("impressions", impressions, ["session_id", "position", reaction])
    require("reaction", reaction, reaction in REACTIONS, f"one of {', '.join(REACTIONS)}")
    randomized = np.asarray(randomized, dtype=bool)
    require("randomized", f"{randomized.shape} values", randomized.shape == (len(impressions),),
            "one boolean per impression")
    shown = impressions[randomized & (impressions["position"].to_numpy() <= top)]
    # Only sessions that show all the shuffled slots: a short session stops before position k, and who scrolls
    # deep (and so reaches position k at all) is not who stops early, which would bias the comparison.
    shown = shown[shown.groupby("session_id")["position"].transform("size").to_numpy() == top]
    require("impressions", f"{len(shown)} randomized impressions in the first {top} positions", len(shown) > 0,
            "logs with randomized sessions (policies.shuffled_top)")
    by_position = shown.groupby("position")[reaction].agg(["size", "mean"]).reindex(range(1, top + 1))
    rate, count = by_position["mean"], by_position["size"]
    ratio = rate / rate.loc[1]
    relative_variance = (1 - rate) / (count * rate) + (1 - rate.loc[1]) / (count.loc[1] * rate.loc[1])
    curve = pd.DataFrame({"impressions": count, f"{reaction} rate": rate, "relative to the top": ratio,
                          "standard error": ratio * np.sqrt(relative_variance)})
    curve.loc[1, "standard error"] = 0.0
    return curve.rename_axis("position")


# --------------------------------------------------------------------------------------------------------
# Off-policy estimates of a new policy's value from another policy's logs
# --------------------------------------------------------------------------------------------------------
def _checked(name: str, values: npt.ArrayLike, length: int | None, positive: bool = False) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    require(name, f"{array.shape} values", array.ndim == 1 and (length is None or len(array) == length),
            f"one number per logged row ({length})" if length is not None else "a one-dimensional array")
    require(name, "values with NaN or infinity", bool(np.isfinite(array).all()), "finite numbers")
    if positive:
        require(name, f"smallest {array.min() if len(array) else 'none'}", bool((array > 0).all()),
                "probabilities > 0 (a logged choice had a chance to be made)")
    return array


def importance_weights(target: npt.ArrayLike, logging: npt.ArrayLike, clip: float | None = None) -> np.ndarray:
    """Each logged row's weight: the new policy's probability of the logged choice over the logging policy's,
    capped at ``clip`` (less variance, some bias) when given."""
    logging = _checked("logging", logging, None, positive=True)
    target = _checked("target", target, len(logging))
    require("target", "negative values", bool((target >= 0).all()), "probabilities >= 0")
    weights = target / logging
    if clip is not None:
        require("clip", clip, isinstance(clip, int | float) and clip > 0, "a number > 0, or None")
        weights = np.minimum(weights, clip)
    return weights


def estimates(rewards: npt.ArrayLike, target: npt.ArrayLike, logging: npt.ArrayLike,
              predicted_logged: npt.ArrayLike, predicted_target: npt.ArrayLike,
              clip: float | None = None) -> pd.DataFrame:
    """The new policy's mean reward per logged row, estimated four ways from logs of another policy, each with a
    standard error (from the spread of its per-row terms):

    - **direct method**: a reward model's prediction for what the new policy would choose (``predicted_target``,
      per row: the expectation over the new policy's choices), trusting the model;
    - **IPS**: the logged rewards weighted by ``target`` over ``logging`` probability of the logged choice;
      unbiased when every choice the new policy makes had a chance under the logging policy;
    - **self-normalized IPS**: the same weights divided by their mean, trading a little bias for less variance;
    - **doubly robust**: the direct method plus IPS on the model's error for the logged choice
      (``predicted_logged``), unbiased if either the model or the propensities are right.

    ``clip`` caps the weights of IPS and doubly robust. The direct method's standard error counts only the
    spread of its per-row predictions, not the reward model's own error, which no spread of the logs reveals."""
    rewards = _checked("rewards", rewards, None)
    n = len(rewards)
    require("rewards", f"{n} rows", n >= 2, "two or more logged rows")
    weights = importance_weights(_checked("target", target, n), _checked("logging", logging, n, True), clip)
    model_logged = _checked("predicted_logged", predicted_logged, n)
    model_target = _checked("predicted_target", predicted_target, n)
    terms = {"direct method": model_target, "IPS": weights * rewards,
             "self-normalized IPS": weights * rewards / weights.mean(),
             "doubly robust": model_target + weights * (rewards - model_logged)}
    return pd.DataFrame({"estimate": {k: v.mean() for k, v in terms.items()},
                         "standard error": {k: v.std(ddof=1) / np.sqrt(n) for k, v in terms.items()}})


# --------------------------------------------------------------------------------------------------------
# The Open Bandit Dataset's small sample (data/open_bandit/README.md)
# --------------------------------------------------------------------------------------------------------
OPEN_BANDIT = Path(__file__).resolve().parent.parent / "data" / "open_bandit"


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
    alpha, beta = _checked("alpha", alpha, None, True), _checked("beta", beta, None, True)
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
