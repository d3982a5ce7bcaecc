"""A new policy's value from another policy's logs, checked against the world's truth.

The logging policy is the legacy ranker with a randomized share of sessions whose first screen (its ``top`` best
posts) is shown in a uniformly random order (``policies.shuffled_top``, with its intended order recorded). The new
policies keep the legacy ranker's first screen and order it differently (``policies.reorder_top``), so every post
they show there could have been logged there: the share of randomized sessions sets how often it was (the
overlap). Each estimator works slot by slot: the reward of a slot depends on the post and its position only (the
independent item-position assumption, true of this world, where a post's examination depends on its position and
nothing else on the screen). ``true_values`` serves each new policy to measure the truth the estimators are read
against, kept beside the models (a week's rollout with the network scoring every candidate takes seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.linear_model import LogisticRegression

from newsfeed.cache import kept_json, rows_digest
from newsfeed.offpolicy.estimators import importance_weights
from newsfeed.validation import is_number, require, require_columns
from newsfeed.world import Policy, World, fingerprint

ESTIMATORS = ("direct method", "IPS", "self-normalized IPS", "doubly robust")


def first_screen(impressions: pd.DataFrame, record: list[pd.DataFrame], share: float, top: int) -> pd.DataFrame:
    """The logged rows of the first ``top`` positions, in sessions that show all of them, ordered by session and
    then by the logging policy's intended rank, each with that rank (``intended``) and the logging policy's
    probability of the post being at its position (``propensity``): ``share / top`` from the randomized
    sessions, plus ``1 - share`` where the unrandomized policy would have put it there too."""
    require_columns("impressions", impressions, ["session_id", "post_id", "position"])
    require("share", share, is_number(share) and 0.0 < share <= 1.0, "a number > 0 and <= 1")
    require("record", f"{len(record)} frames", bool(record), "the frames shuffled_top recorded (its record=)")
    intended = pd.concat(record, ignore_index=True)
    screen = impressions[impressions["position"] <= top]
    screen = screen[screen.groupby("session_id")["position"].transform("size").to_numpy() == top]
    screen = screen.merge(intended, on=["session_id", "post_id"], how="left", validate="one_to_one")
    require("record", "posts without an intended rank", bool(screen["intended"].notna().all()),
            "a record of the same rollout (every first-screen post has its intended rank)")
    agrees = (screen["intended"] == screen["position"]).to_numpy()
    screen["propensity"] = share / top + (1.0 - share) * agrees
    return screen.sort_values(["session_id", "intended"], kind="stable").reset_index(drop=True)


def target_probabilities(scores: npt.ArrayLike, top: int, explore: float = 0.0) -> np.ndarray:
    """A ``(sessions, top, top)`` array: the probability that a new policy shows each of a session's ``top`` posts
    (rows, in ``first_screen``'s order) at each position (columns). The policy orders the posts by ``scores``
    (one per row of ``first_screen``), and in a share ``explore`` of sessions shuffles them uniformly."""
    scores = np.asarray(scores, dtype=float).reshape(-1, top)
    require("explore", explore, is_number(explore) and 0.0 <= explore <= 1.0, "a number from 0 to 1")
    rank = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1)  # 0 for the best post
    chosen = np.eye(top)[rank]  # one-hot: post i at position rank[i]
    return explore / top + (1.0 - explore) * chosen


def reward_model(screen: pd.DataFrame, feature: npt.ArrayLike, reward: str) -> Callable[[np.ndarray], np.ndarray]:
    """The direct method's model, fitted on the logs it will judge: a logistic regression of ``reward`` on a
    post's ``feature`` (a score) and its position (one indicator per position). Returns a function from
    ``(rows, positions)`` of feature values to predicted rewards at every position."""
    top = int(screen["position"].max())
    feature = np.asarray(feature, dtype=float)
    design = np.column_stack([feature, np.eye(top)[screen["position"].to_numpy() - 1]])
    model = LogisticRegression(C=np.inf, max_iter=1000).fit(design, screen[reward].to_numpy())

    def predict(values: np.ndarray) -> np.ndarray:
        rows = np.repeat(np.asarray(values, dtype=float).ravel(), top)
        slots = np.tile(np.eye(top), (len(rows) // top, 1))
        return model.predict_proba(np.column_stack([rows, slots]))[:, 1].reshape(-1, top)

    return predict


def session_terms(screen: pd.DataFrame, target: np.ndarray, predicted: np.ndarray, reward: str,
                  clip: float | None = None) -> pd.DataFrame:
    """Per logged session, the sums over its first screen from which every estimator is a ratio of
    means: the direct method's predicted reward of the new policy, the importance weights, the
    weighted rewards, and the weighted model errors. ``target`` is ``target_probabilities``;
    ``predicted`` the reward model's prediction for each row (post) at each position."""
    top = target.shape[1]
    position = screen["position"].to_numpy() - 1
    target_logged = target.reshape(-1, top)[np.arange(len(screen)), position]
    weights = importance_weights(target_logged, screen["propensity"].to_numpy(), clip)
    rewards = screen[reward].to_numpy(dtype=float)
    model_logged = predicted[np.arange(len(screen)), position]
    # The direct method: the reward model's prediction, expected over the new policy's screen.
    direct = (target * predicted.reshape(-1, top, top)).sum(axis=(1, 2))
    per_row = pd.DataFrame({"weight": weights, "weighted reward": weights * rewards,
                            "weighted error": weights * (rewards - model_logged)})
    sums = per_row.groupby(np.arange(len(screen)) // top).sum()
    sums.insert(0, "direct", direct)
    return sums


def _estimators(means: pd.DataFrame, top: int) -> pd.DataFrame:
    """Every estimator from the means of ``session_terms`` over some sessions, one row per set of means."""
    return pd.DataFrame({"direct method": means["direct"] / top, "IPS": means["weighted reward"] / top,
                         "self-normalized IPS": means["weighted reward"] / means["weight"],
                         "doubly robust": (means["direct"] + means["weighted error"]) / top})


def estimate(terms: pd.DataFrame, top: int) -> pd.Series:
    """Each estimator's value of the new policy, in reward per slot of the first screen, from ``session_terms``."""
    return _estimators(terms.mean().to_frame().T, top).iloc[0]


def against_truth(terms: Mapping[str, pd.DataFrame], truth: Mapping[str, float], top: int, resamples: int = 200,
                  seed: int = 0) -> pd.DataFrame:
    """For each new policy, each estimator's estimate from the whole log, its error against the ``truth``,
    its spread over ``resamples`` resamples of the logged sessions (a bootstrap: another log of the same
    size), and its root-mean-square error against the truth over those resamples."""
    require("resamples", resamples, isinstance(resamples, int) and resamples >= 2, "an integer >= 2")
    rng = np.random.default_rng(seed)
    rows = {}
    for name, sums in terms.items():
        counts = rng.multinomial(len(sums), np.full(len(sums), 1 / len(sums)), size=resamples)
        boot = _estimators(pd.DataFrame(counts @ sums.to_numpy() / len(sums), columns=sums.columns), top)
        found = estimate(sums, top)
        for estimator in ESTIMATORS:
            rows[(name, estimator)] = {
                "true value": truth[name], "estimate": found[estimator], "error": found[estimator] - truth[name],
                "spread": boot[estimator].std(ddof=1),
                "RMSE": float(np.sqrt(((boot[estimator] - truth[name]) ** 2).mean()))}
    return pd.DataFrame(rows).T.rename_axis(["policy", "estimator"])


def true_value(probabilities: pd.DataFrame, impressions: pd.DataFrame, reward: str, top: int) -> float:
    """A policy's true value as ``first_screen`` counts it: the mean true probability of ``reward`` over the
    first ``top`` slots of its rollout's sessions that show all of them."""
    screen = impressions["position"].to_numpy() <= top
    full = impressions[screen].groupby("session_id")["position"].transform("size").to_numpy() == top
    return float(probabilities.loc[screen, f"p_{reward}"].to_numpy()[full].mean())


def true_values(world: World, makers: Mapping[str, Callable[[], Policy]], sessions: pd.DataFrame,
                history: pd.DataFrame, reward: str, top: int, seed: int = 0, folder: str | Path | None = None,
                identity: bytes = b"") -> dict[str, float]:
    """Each policy's ``true_value`` when served to ``sessions`` after the logged ``history`` (one rollout with
    ``seed``): what every estimator is measured against. ``makers`` maps each name to a function that makes
    the policy, called only when measured. With ``folder``, kept there and read back when the same code
    served the same policies (``identity`` must say what makes them: a cache cannot see inside a policy)."""
    require("makers", makers, isinstance(makers, Mapping) and len(makers) > 0
            and all(isinstance(name, str) and callable(make) for name, make in makers.items()),
            "a non-empty mapping from names to functions that make a policy")

    def run() -> dict[str, float]:
        values = {}
        for name, make in makers.items():
            served = world.rollout(make(), sessions, seed=seed, earlier_impressions=history)
            values[name] = true_value(served.probabilities, served.impressions, reward, top)
        return values

    if folder is None:
        return run()
    from newsfeed import experiments
    from newsfeed.models.shipped import _source_files  # the features and models a served network runs

    key = [fingerprint.output_digest(world).encode(), rows_digest(sessions, history), identity,
           repr((list(makers), reward, top, seed)).encode()]
    return kept_json(folder, "truth", key, [*_source_files(), *experiments.study_sources(__file__)], run)

