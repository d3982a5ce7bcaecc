"""What logs with known randomness allow: the examination curve, and a new policy's value from another's logs.

Every model of the book learns from logs that a ranker chose, and position bias is in all of them: a post shown
lower is examined less, whatever it is. ``policies.shuffled_top`` randomizes the top slots of a share of sessions;
within those slots a post's position is then independent of the post, so how a reaction's rate falls with position
there is the examination curve itself (the swap intervention of Joachims et al., 2017).
"""

from __future__ import annotations

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


def examination_exponent(curve: pd.DataFrame) -> float:
    """The exponent b of a power-law examination curve, k ** -b, fitted to ``position_curve``'s estimate by least
    squares on the log scale, each position weighted by its precision: how far a team extrapolates the randomized
    slots' curve to every position (the world's own curve has this form; a real one is checked against it)."""
    require_columns("curve", curve, ["relative to the top", "standard error"])
    below = curve.iloc[1:]  # position 1 is 1 by construction
    ratio, error = below["relative to the top"].to_numpy(float), below["standard error"].to_numpy(float)
    require("curve", f"{len(below) + 1} positions", len(below) >= 1 and bool((ratio > 0).all()),
            "two or more positions with a positive rate")
    log_k = np.log(below.index.to_numpy(float))
    weight = (ratio / np.maximum(error, 1e-12)) ** 2  # 1 / variance of log(ratio), by the delta method
    return float(-(weight * log_k * np.log(ratio)).sum() / (weight * log_k**2).sum())


# --------------------------------------------------------------------------------------------------------
# Off-policy estimates of a new policy's value from another policy's logs
# --------------------------------------------------------------------------------------------------------
def checked_array(name: str, values: npt.ArrayLike, length: int | None, positive: bool = False) -> np.ndarray:
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
    logging = checked_array("logging", logging, None, positive=True)
    target = checked_array("target", target, len(logging))
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
    rewards = checked_array("rewards", rewards, None)
    n = len(rewards)
    require("rewards", f"{n} rows", n >= 2, "two or more logged rows")
    weights = importance_weights(checked_array("target", target, n), checked_array("logging", logging, n, True), clip)
    model_logged = checked_array("predicted_logged", predicted_logged, n)
    model_target = checked_array("predicted_target", predicted_target, n)
    terms = {"direct method": model_target, "IPS": weights * rewards,
             "self-normalized IPS": weights * rewards / weights.mean(),
             "doubly robust": model_target + weights * (rewards - model_logged)}
    return pd.DataFrame({"estimate": {k: v.mean() for k, v in terms.items()},
                         "standard error": {k: v.std(ddof=1) / np.sqrt(n) for k, v in terms.items()}})
