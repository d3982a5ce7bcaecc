"""Integrity: harmful posts in the feed, the fact-check labels that arrive late, a classifier that does not wait
for them, and demotion in re-ranking.

In a world with ``WorldConfig.harmful_share`` on, some posts are harmful or misleading, and they are engaging:
clicked, argued with and shared more than their quality earns. A ranker of engagement serves them up. A team
learns which posts are harmful from fact-checkers, late and for a sample only; the world knows every label, so
what reaches users can be counted, not guessed:

- ``fact_checks``: the fact-checkers' verdicts, a sample of posts each judged a day or two after it was posted;
- ``early_reactions``: each post's impressions and reaction rates in its first hours, from a log;
- ``IntegrityClassifier``: the chance a post is harmful from its text and its reactions so far, trained on
  the verdicts that had arrived by a cutoff;
- ``demoted``: a policy whose scores lose ``weight x P(harmful)``, and the posts judged harmful put last;
- ``harmful_exposure``: a feed's harmful impressions, split by whether their verdict had arrived;
- ``demotion_curve``: a policy demoted with each weight, its true engagement against the harm it serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline

from newsfeed import experiments, metrics
from newsfeed.cache import kept_json, rows_digest
from newsfeed.validation import is_number, require, require_columns, require_float, require_int
from newsfeed.world import Policy, World, fingerprint

#: The reactions a feed's counters keep per post (``World.rollout``'s ``*_so_far`` columns).
COUNTED = ("click", "like", "hide")
#: Impressions' worth of weight each rate's prior gets: a post seen five times is judged mostly by the prior.
_PRIOR_WEIGHT = 20.0


def _harmful_labels(world: World) -> np.ndarray:
    labels = world.truth.post_harmful
    require("world", "a world without harmful posts", labels is not None,
            "a world with harmful posts (WorldConfig.harmful_share > 0)")
    return labels


def fact_checks(world: World, sample_share: float = 0.3, median_delay_hours: float = 36.0,
                seed: int = 0) -> pd.DataFrame:
    """The fact-checkers' verdicts: each post is reviewed with chance ``sample_share``, its verdict (the true
    label) arriving a log-normal delay after it was posted (median ``median_delay_hours``, a quarter of them
    more than twice as late). One row per reviewed post: ``post_id``, ``labelled_at``, ``harmful``."""
    harmful = _harmful_labels(world)
    require_float("sample_share", sample_share, 0.0, 1.0, open_lo=True)
    require_float("median_delay_hours", median_delay_hours, 0.0, 24.0 * 365, open_lo=True)
    require_int("seed", seed, lo=0)
    rng = np.random.default_rng(seed)
    reviewed = np.flatnonzero(rng.random(len(harmful)) < sample_share)
    delay = median_delay_hours * np.exp(rng.normal(0.0, 1.0, len(reviewed)))
    created = world.posts["created_at"].to_numpy()[reviewed]
    return pd.DataFrame({"post_id": reviewed.astype(np.int64),
                         "labelled_at": created + (delay * 3600.0).astype("timedelta64[s]"),
                         "harmful": harmful[reviewed]})


def early_reactions(log: pd.DataFrame, posts: pd.DataFrame, hours: float = 6.0) -> pd.DataFrame:
    """Each post's impressions and reactions (``COUNTED``) in its first ``hours`` hours, from the impressions
    of ``log`` (one row per post of ``posts``, indexed by ``post_id``; zeros for a post not shown then)."""
    require_columns("log", log, ["post_id", "timestamp", *COUNTED])
    require_float("hours", hours, 0.0, open_lo=True)
    created = posts.set_index("post_id")["created_at"]
    early = log[log["timestamp"] < created.reindex(log["post_id"]).to_numpy() + pd.Timedelta(hours=hours)]
    counts = early.groupby("post_id")[list(COUNTED)].sum()
    counts.insert(0, "impressions", early.groupby("post_id").size())
    return counts.reindex(created.index, fill_value=0).astype(np.int64)


@dataclass
class IntegrityClassifier:
    """P(harmful) of a post from its text and its reactions so far: a text model (TF-IDF of words and word pairs,
    logistic regression) whose log-odds, with each reaction's smoothed rate and the impressions behind them,
    feed a second logistic regression. ``text_scores`` holds the text model's log-odds of every post (out of
    fold for the posts it was trained on, so the second model learns how far to trust it)."""

    text_scores: np.ndarray
    combine: LogisticRegression
    priors: dict[str, float]

    @classmethod
    def fit(cls, world: World, log: pd.DataFrame, checks: pd.DataFrame, until: pd.Timestamp,
            early_hours: float = 6.0, seed: int = 0) -> IntegrityClassifier:
        """Trained on the verdicts of ``checks`` that had arrived by ``until``, with reactions from the
        impressions of ``log`` before ``until`` (each post's first ``early_hours`` hours)."""
        require_columns("checks", checks, ["post_id", "labelled_at", "harmful"])
        known = checks[checks["labelled_at"] < until]
        labels = known["harmful"].to_numpy(dtype=int)
        require("checks", f"{labels.sum()} harmful of {len(labels)} verdicts before {until}",
                5 <= labels.sum() <= len(labels) - 5, "at least five verdicts of each kind before `until`")
        texts = world.posts["text"].fillna("").to_numpy()
        text_model = _text_model(seed)
        ids = known["post_id"].to_numpy()
        out_of_fold = cross_val_predict(text_model, texts[ids], labels, cv=5, method="decision_function")
        scores = text_model.fit(texts[ids], labels).decision_function(texts)
        scores[ids] = out_of_fold
        early = early_reactions(log[log["timestamp"] < until], world.posts, early_hours).loc[ids]
        shown = early["impressions"].sum()
        priors = {reaction: float(early[reaction].sum() / shown) for reaction in COUNTED}
        classifier = cls(scores, LogisticRegression(max_iter=1000), priors)
        classifier.combine.fit(classifier._features(ids, early), labels)
        return classifier

    def _features(self, post_ids: np.ndarray, counts: pd.DataFrame) -> np.ndarray:
        shown = counts["impressions"].to_numpy(dtype=float)
        rates = [(counts[r].to_numpy(dtype=float) + _PRIOR_WEIGHT * self.priors[r]) / (shown + _PRIOR_WEIGHT)
                 for r in COUNTED]
        return np.column_stack([self.text_scores[post_ids], np.log1p(shown), *(np.log(rate) for rate in rates)])

    def predict(self, post_ids: np.ndarray, counts: pd.DataFrame) -> np.ndarray:
        """P(harmful) of each post of ``post_ids`` with its ``counts`` so far (columns ``impressions`` and
        ``COUNTED``, a row per post id; zeros for a post not yet shown: its text alone speaks)."""
        require_columns("counts", counts, ["impressions", *COUNTED])
        return self.combine.predict_proba(self._features(np.asarray(post_ids), counts))[:, 1]

    def predict_text(self, post_ids: np.ndarray) -> np.ndarray:
        """P(harmful) of each post from its text alone, the moment it is posted."""
        return self.predict(post_ids, pd.DataFrame(0, index=range(len(post_ids)),
                                                   columns=["impressions", *COUNTED]))

    def predict_candidates(self, candidates: pd.DataFrame) -> np.ndarray:
        """P(harmful) of each candidate row of a rollout, from its post's text and counters so far."""
        counts = candidates[["impressions_so_far", *(f"{r}s_so_far" for r in COUNTED)]]
        counts = counts.set_axis(["impressions", *COUNTED], axis=1)
        return self.predict(candidates["post_id"].to_numpy(), counts)


def _text_model(seed: int) -> Pipeline:
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                         LogisticRegression(C=4.0, max_iter=2000, random_state=seed))


def _labelled_by(checks: pd.DataFrame, candidates: pd.DataFrame) -> np.ndarray:
    """For each candidate row, whether its post's verdict (harmful) had arrived by the request."""
    harmful = checks[checks["harmful"]].set_index("post_id")["labelled_at"]
    arrived = harmful.reindex(candidates["post_id"].to_numpy()).to_numpy()
    return ~pd.isna(arrived) & (arrived <= candidates["requested_at"].to_numpy())


def demoted(policy: Policy, classifier: IntegrityClassifier | None, checks: pd.DataFrame | None,
            weight: float) -> Policy:
    """``policy`` re-ranked for integrity: each score less ``weight`` times ``classifier``'s
    P(harmful), in the policy's own units (with chapter 2's score, a post surely harmful costs
    ``weight`` points of engagement; ``None`` or weight 0: no demotion), and the posts whose harmful
    verdict in ``checks`` had arrived by the request put below every other candidate (``None``: no
    verdicts)."""
    require("policy", policy, callable(policy), "a callable that scores candidate rows")
    require("weight", weight, is_number(weight) and weight >= 0, "a number >= 0 (0: no demotion)")

    def score(candidates: pd.DataFrame) -> np.ndarray:
        base = np.asarray(policy(candidates), dtype=float)
        if classifier is not None and weight > 0:
            base = base - weight * classifier.predict_candidates(candidates)
        if checks is not None and len(base):
            base = np.where(_labelled_by(checks, candidates), base.min() - 1.0, base)
        return base

    return score


def harmful_exposure(impressions: pd.DataFrame, world: World, checks: pd.DataFrame) -> dict[str, float]:
    """The harmful posts among a feed's ``impressions`` (per thousand impressions): all of them, those shown
    before the post's verdict arrived or without one ever, and those shown after; of the impressions of the
    posts judged harmful, the share before their verdict; and the most any harmful post gathered before one."""
    require_columns("impressions", impressions, ["post_id", "timestamp"])
    posts = impressions["post_id"].to_numpy()
    harmful = _harmful_labels(world)[posts]
    verdict = checks[checks["harmful"]].set_index("post_id")["labelled_at"]
    arrived = verdict.reindex(posts).to_numpy()
    judged = ~pd.isna(arrived)
    after = harmful & judged & (impressions["timestamp"].to_numpy() >= arrived)
    before = harmful & ~after
    per_post = pd.Series(before).groupby(posts).sum()
    per_thousand = 1000.0 / max(len(impressions), 1)
    return {"harmful per 1000": float(harmful.sum() * per_thousand),
            "before a verdict per 1000": float(before.sum() * per_thousand),
            "after a verdict per 1000": float(after.sum() * per_thousand),
            "judged posts, share before": float((judged & ~after).sum() / max(judged.sum(), 1)),
            "most before a verdict": float(per_post.max()) if len(per_post) else 0.0}


def served_integrity(world: World, policy: Policy, checks: pd.DataFrame, sessions: pd.DataFrame,
                     history: pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """``harmful_exposure`` of the feeds ``policy`` serves to ``sessions`` (after the logged ``history``), with
    their true expected engagement per session (chapter 2's score)."""
    served = world.rollout(policy, sessions, seed=seed, earlier_impressions=history)
    engagement = metrics.engagement_score(served.probabilities, prefix="p_").sum() / len(sessions)
    return {"engagement per session": float(engagement),
            **harmful_exposure(served.impressions, world, checks)}


def demotion_curve(world: World, policy: Policy, classifier: IntegrityClassifier, checks: pd.DataFrame,
                   weights: Iterable[float], sessions: pd.DataFrame, history: pd.DataFrame,
                   seeds: Iterable[int] = (0,), folder: str | Path | None = None,
                   identity: bytes = b"") -> pd.DataFrame:
    """``served_integrity`` of ``policy`` as it is (``"none"``), with the posts judged harmful put last
    (``"verdicts"``), and with those put last and the rest demoted with each of ``weights`` (``"demoted"``): a
    row per (setting, rollout seed of ``seeds``). With ``folder``, kept there; ``identity`` must say what makes
    ``policy`` and ``classifier`` (a cache cannot see inside them)."""
    weights = [float(weight) for weight in weights]
    require("weights", weights, len(weights) > 0 and all(w > 0 for w in weights), "one or more numbers > 0")
    seeds = [int(seed) for seed in seeds]
    require("seeds", seeds, len(seeds) > 0 and min(seeds) >= 0, "one or more rollout seeds (ints >= 0)")
    settings = [("none", None, 0.0), ("verdicts", checks, 0.0), *(("demoted", checks, w) for w in weights)]

    def run() -> list[dict[str, float | str]]:
        return [{"setting": name, "weight": weight, "seed": seed,
                 **served_integrity(world, demoted(policy, classifier, verdicts, weight), checks, sessions,
                                    history, seed)}
                for name, verdicts, weight in settings for seed in seeds]

    if folder is None:
        return pd.DataFrame(run())
    key = [fingerprint.output_digest(world).encode(), rows_digest(sessions, history, checks), identity,
           repr((weights, seeds)).encode()]
    return pd.DataFrame(kept_json(folder, "integrity", key, experiments.study_sources(__file__), run))
