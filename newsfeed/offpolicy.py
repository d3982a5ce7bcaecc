"""Learning from logged feedback: what logs with known randomness allow (the chapter after chapter 8, in
preparation).

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
