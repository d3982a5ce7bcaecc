"""Metrics the book measures with: the weighted engagement score (the objective chapter 2 frames), per-list
ranking metrics, per-reaction probability metrics, inequality, and the report of what a served feed promoted.

Ranking metrics take one row per (list, item) and average over lists, the way a feed is judged: every
session's feed is one ranked list. They are tested against scikit-learn where the two overlap.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from newsfeed.validation import require, require_float, require_int
from newsfeed.world import REACTIONS, Rollout, World

#: Value of each reaction in the weighted engagement score (chapter 2 derives and justifies these):
#: a share is worth twenty clicks, a hide costs as much as a share earns.
ENGAGEMENT_WEIGHTS: Mapping[str, float] = {"click": 1.0, "like": 5.0, "comment": 10.0, "share": 20.0,
                                           "hide": -20.0}


def engagement_score(frame: pd.DataFrame, weights: Mapping[str, float] | None = None,
                     prefix: str = "") -> pd.Series:
    """The weighted engagement of each row: sum of ``weights[r] * frame[prefix + r]``.

    Works on observed 0/1 reactions (``prefix=""``) and on probabilities (``prefix="p_"``), whose weighted
    sum is the *expected* engagement. Raises ``ValueError`` naming any reaction column that is missing.
    """
    weights = ENGAGEMENT_WEIGHTS if weights is None else weights
    missing = [prefix + r for r in weights if prefix + r not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing columns {missing}: engagement_score needs one column per weight")
    total = sum(float(w) * frame[prefix + r].to_numpy(dtype=float) for r, w in weights.items())
    return pd.Series(total, index=frame.index, name="engagement")


#: A user who likes, comments or shares on fewer than this share of impressions "reacts little" (chapter 2).
LOW_REACTION_RATE = 0.02
#: Impressions a user needs before their reaction rate is trusted.
MIN_IMPRESSIONS = 20


def reaction_rates(log: pd.DataFrame) -> pd.DataFrame:
    """Per user of ``log``: ``impressions`` and ``reaction_rate``, the share of impressions with a like, comment
    or share (the public reactions a passive user rarely gives)."""
    reacted = log[["like", "comment", "share"]].any(axis=1)
    return reacted.groupby(log["user_id"]).agg(impressions="size", reaction_rate="mean")


def low_reactors(log: pd.DataFrame, rate: float = LOW_REACTION_RATE,
                 min_impressions: int = MIN_IMPRESSIONS) -> pd.Series:
    """Whether each user of ``log`` is a *low reactor*: at least ``min_impressions`` impressions, and a
    reaction rate under ``rate``. The observable proxy for the passive users only the simulator knows."""
    require_float("rate", rate, 0.0, 1.0)
    require_int("min_impressions", min_impressions, lo=1)
    users = reaction_rates(log)
    return ((users["impressions"] >= min_impressions) & (users["reaction_rate"] < rate)).rename("low reactor")


def _ranked(groups: np.ndarray, scores: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row order that sorts each group by descending score (ties broken at random) and each row's 1-based
    rank within its group."""
    tiebreak = np.random.default_rng(seed).random(len(scores))
    order = np.lexsort((tiebreak, -scores, groups))
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, sizes) + 1
    return order, rank


def _check_columns(groups: np.ndarray, scores: np.ndarray, relevance: np.ndarray, k: int) -> None:
    if not len(groups) == len(scores) == len(relevance):
        raise ValueError(f"groups, scores and relevance must have one value per row; got lengths "
                         f"{len(groups)}, {len(scores)}, {len(relevance)}")
    require_int("k", k, lo=1)
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite: got NaN or infinity")


def ndcg_at_k(groups: np.ndarray, scores: np.ndarray, relevance: np.ndarray, k: int = 10,
              seed: int = 0) -> float:
    """Mean nDCG@k over groups (lists) that have any positive relevance.

    Gains are the relevance values (negative ones count as 0, since nDCG is defined for non-negative gains),
    discounted by ``1 / log2(rank + 1)``. Lists with no positive relevance have no ideal ordering and are
    left out of the mean. Ties in ``scores`` are broken at random with ``seed``.
    """
    groups, scores, relevance = (np.asarray(x) for x in (groups, scores, relevance))
    _check_columns(groups, scores, relevance, k)
    gains = np.clip(relevance.astype(float), 0.0, None)
    order, rank = _ranked(groups, scores.astype(float), seed)
    ideal_order, ideal_rank = _ranked(groups, gains, seed)
    discount = np.where(rank <= k, 1.0 / np.log2(rank + 1.0), 0.0)
    ideal_discount = np.where(ideal_rank <= k, 1.0 / np.log2(ideal_rank + 1.0), 0.0)
    dcg = pd.Series(gains[order] * discount).groupby(groups[order]).sum()
    idcg = pd.Series(gains[ideal_order] * ideal_discount).groupby(groups[ideal_order]).sum()
    valid = idcg > 0
    return float((dcg[valid] / idcg[valid]).mean()) if valid.any() else float("nan")


def _per_group(groups: np.ndarray, scores: np.ndarray, relevance: np.ndarray, k: int,
               seed: int) -> pd.DataFrame:
    order, rank = _ranked(groups, scores.astype(float), seed)
    hit = (relevance[order] > 0).astype(float)
    frame = pd.DataFrame({"group": groups[order], "rank": rank, "hit": hit, "top": (rank <= k) * hit})
    frame["hits_so_far"] = frame.groupby("group")["top"].cumsum()
    return frame


def recall_at_k(groups: np.ndarray, scores: np.ndarray, relevance: np.ndarray, k: int = 10,
                seed: int = 0) -> float:
    """Mean over lists with any relevant item of (relevant items in the top k) / (relevant items)."""
    groups, scores, relevance = (np.asarray(x) for x in (groups, scores, relevance))
    _check_columns(groups, scores, relevance, k)
    frame = _per_group(groups, scores, relevance, k, seed)
    per_list = frame.groupby("group").agg(found=("top", "sum"), relevant=("hit", "sum"))
    per_list = per_list[per_list["relevant"] > 0]
    return float((per_list["found"] / per_list["relevant"]).mean()) if len(per_list) else float("nan")


def map_at_k(groups: np.ndarray, scores: np.ndarray, relevance: np.ndarray, k: int = 10, seed: int = 0) -> float:
    """Mean average precision at k: per list, the mean of precision@i over the relevant items at ranks
    i <= k, divided by min(k, relevant items); averaged over lists with any relevant item."""
    groups, scores, relevance = (np.asarray(x) for x in (groups, scores, relevance))
    _check_columns(groups, scores, relevance, k)
    frame = _per_group(groups, scores, relevance, k, seed)
    frame["precision_term"] = frame["top"] * frame["hits_so_far"] / frame["rank"]
    per_list = frame.groupby("group").agg(total=("precision_term", "sum"), relevant=("hit", "sum"))
    per_list = per_list[per_list["relevant"] > 0]
    if not len(per_list):
        return float("nan")
    return float((per_list["total"] / np.minimum(per_list["relevant"], k)).mean())


def within_list_auc(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC within each list, averaged over the lists that hold both a positive and a negative: how often a
    list's positive is scored above its negative (ties count a half). What a feed's order can use, where the
    ROC-AUC over all rows also credits a model for telling which lists have more positives."""
    groups, labels, scores = (np.asarray(x) for x in (groups, labels, scores))
    require("labels", f"{labels.shape} labels", labels.shape == groups.shape == scores.shape and labels.ndim == 1,
            "one label, group and score per row")
    require("labels", "values other than 0 and 1", bool(np.isin(labels, (0, 1)).all()), "0 or 1 per row")
    require("scores", "NaN scores", not np.isnan(scores.astype(float)).any(), "a number per row")
    rank = pd.Series(scores.astype(float)).groupby(groups).rank(method="average").to_numpy()
    per_list = pd.DataFrame({"group": groups, "positive": labels, "rank": rank * labels}).groupby("group").agg(
        positives=("positive", "sum"), rows=("positive", "size"), rank_sum=("rank", "sum"))
    per_list = per_list[(per_list["positives"] > 0) & (per_list["positives"] < per_list["rows"])]
    if not len(per_list):
        return float("nan")
    pos, neg = per_list["positives"], per_list["rows"] - per_list["positives"]
    return float(((per_list["rank_sum"] - pos * (pos + 1) / 2) / (pos * neg)).mean())


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when all are equal, near 1 when one holds everything."""
    values = np.sort(np.asarray(values, dtype=float))
    if len(values) == 0 or np.any(values < 0):
        raise ValueError("values must be a non-empty array of non-negative numbers")
    cumulative = np.cumsum(values)
    if cumulative[-1] == 0:
        return 0.0
    n = len(values)
    return float((n + 1 - 2 * np.sum(cumulative) / cumulative[-1]) / n)


def top_share(values: np.ndarray, top_fraction: float = 0.01) -> float:
    """Share of the total held by the largest ``top_fraction`` of values (e.g. engagement of the top 1% posts)."""
    require_float("top_fraction", top_fraction, 0, 1, open_lo=True)
    values = np.sort(np.asarray(values, dtype=float))[::-1]
    count = max(1, int(round(top_fraction * len(values))))
    return float(values[:count].sum() / values.sum()) if values.sum() > 0 else 0.0


def calibration(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean predicted probability over observed rate: 1 is calibrated, below 1 under-predicts (NaN without a
    positive label, where the rate to compare with is 0)."""
    observed = float(np.mean(labels))
    return float(np.mean(probabilities)) / observed if observed else float("nan")


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """The mean gap between predicted and observed rates across the range: the rows sorted by prediction and cut
    into ``bins`` groups of equal size, ``|mean prediction - observed rate|`` per group, averaged (equal
    weights, as the groups are equal). ``calibration`` compares only the overall means; this sees a head that is
    too high on its likely rows and too low on its unlikely ones, which averages out there."""
    require_int("bins", bins, lo=1)
    labels, probabilities = np.asarray(labels, dtype=float), np.asarray(probabilities, dtype=float)
    require("probabilities", f"{len(probabilities)} values for {len(labels)} labels",
            len(probabilities) == len(labels) >= bins, f"one probability per label, and at least {bins} rows")
    order = np.argsort(probabilities, kind="stable")
    groups = np.array_split(order, bins)
    return float(np.mean([abs(probabilities[g].mean() - labels[g].mean()) for g in groups]))


def reaction_report(labels: pd.DataFrame, probabilities: pd.DataFrame,
                    reactions: tuple[str, ...] = REACTIONS) -> pd.DataFrame:
    """Per reaction: ROC-AUC, PR-AUC (average precision), log loss, and calibration (mean predicted over
    observed rate; 1 is calibrated). ``probabilities`` has a ``p_<reaction>`` column per reaction.

    Every reaction needs at least one positive and one negative label: without a positive, the observed rate is
    0 and calibration, ROC-AUC and PR-AUC have no value (a slice too small or a reaction too rare).
    """
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    rows = {}
    for reaction in reactions:
        y = labels[reaction].to_numpy()
        positives = int(np.sum(y > 0))
        require("labels", f"{positives} positive {reaction} labels of {len(y)}", 0 < positives < len(y),
                f"labels with at least one positive and one negative {reaction} (calibration divides by the "
                "observed rate)")
        p = np.clip(probabilities[f"p_{reaction}"].to_numpy(dtype=float), 1e-7, 1 - 1e-7)
        rows[reaction] = {"ROC-AUC": roc_auc_score(y, p), "PR-AUC": average_precision_score(y, p),
                          "log loss": log_loss(y, p, labels=[0, 1]), "calibration": calibration(y, p)}
    return pd.DataFrame(rows).T


def true_engagement(world: World, rows: pd.DataFrame) -> np.ndarray:
    """The true expected weighted engagement of each row (``user_id``, ``post_id``, ``timestamp``, and
    ``device``, without which each user's own) had its post been shown at the top of the feed: the relevance the
    book's ranking metrics use, free of the logging policy's position bias. Only a simulator can answer."""
    device = rows["device"] if "device" in rows else None
    probabilities = world.probabilities(rows["user_id"], rows["post_id"], 1, rows["timestamp"], device)
    return engagement_score(probabilities, prefix="p_").to_numpy()


def share_of_lift(value: float | pd.Series, random: float | pd.Series, oracle: float | pd.Series) -> float | pd.Series:
    """How much of the oracle's improvement over random a model captures: 0 is random, 1 the oracle."""
    return (value - random) / (oracle - random)


# --------------------------------------------------------------------------------------------------------
# What a served feed promoted (online, from a rollout)
# --------------------------------------------------------------------------------------------------------
#: The column of ``feed_report`` for each reaction (a count per session reads best in the plural).
REPORT_NAMES: dict[str, str] = {"click": "clicks", "like": "likes", "comment": "comments", "share": "shares",
                                "hide": "hides"}


def feed_report(world: World, rollout: Rollout, top_positions: int = 3, clickbait_threshold: float = 0.5,
                outcomes: str = "expected") -> pd.Series:
    """What a served feed promoted, per session that showed at least one post.

    Reactions (``clicks`` ... ``hides``), ``dwell_seconds`` and the weighted ``engagement`` are summed over a
    session's impressions and averaged over sessions. With ``outcomes="expected"`` they are the sums of the
    true probabilities (and expected dwell) of what was shown, free of the sampling noise of the outcomes;
    with ``outcomes="observed"`` they are the sampled reactions, as an A/B test would count them.

    Two columns read the ground truth, which no real company sees: ``clickbait_at_top``, the share of the
    top ``top_positions`` slots filled with posts whose latent clickbait-ness exceeds ``clickbait_threshold``,
    and ``quality_at_top``, the mean latent quality of those posts.
    """
    require_int("top_positions", top_positions, lo=1)
    require_float("clickbait_threshold", clickbait_threshold, 0.0, 1.0)
    require("outcomes", outcomes, outcomes in ("expected", "observed"), "'expected' or 'observed'")
    impressions = rollout.impressions
    require("rollout", "a rollout with no impressions", not impressions.empty,
            "a rollout that showed at least one post (there is nothing to report otherwise)")
    if outcomes == "expected":
        values = impressions[["impression_id"]].merge(rollout.probabilities, on="impression_id", how="left")
        reactions = values[[f"p_{r}" for r in REACTIONS]].set_axis(list(REACTIONS), axis=1)
        dwell = values["expected_dwell"]
    else:
        reactions = impressions[list(REACTIONS)].astype(float)
        dwell = impressions["dwell_seconds"]
    n_sessions = impressions["session_id"].nunique()
    per_session = {REPORT_NAMES[r]: float(reactions[r].sum()) / n_sessions for r in REACTIONS}
    per_session["dwell_seconds"] = float(dwell.sum()) / n_sessions
    per_session["engagement"] = float(engagement_score(reactions).sum()) / n_sessions
    top = impressions.loc[impressions["position"] <= top_positions, "post_id"].to_numpy()
    per_session["clickbait_at_top"] = float(np.mean(world.truth.post_clickbait[top] > clickbait_threshold))
    per_session["quality_at_top"] = float(np.mean(world.truth.post_quality[top]))
    per_session["sessions"] = float(n_sessions)
    return pd.Series(per_session, name=outcomes)
