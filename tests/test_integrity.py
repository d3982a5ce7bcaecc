"""Integrity: late, sampled fact-checks, the classifier that does not wait for them, and demotion."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from newsfeed import experiments, integrity, metrics, policies
from newsfeed.world import World


@pytest.fixture(scope="module")
def checks(harmful: World) -> pd.DataFrame:
    return integrity.fact_checks(harmful, sample_share=0.5, seed=1)


def test_fact_checks_are_a_late_sample_of_the_true_labels(harmful: World, checks: pd.DataFrame) -> None:
    assert 0.45 < len(checks) / len(harmful.posts) < 0.55 and checks["post_id"].is_unique
    assert np.array_equal(checks["harmful"], harmful.truth.post_harmful[checks["post_id"]])
    delay = (checks["labelled_at"] - harmful.posts["created_at"].to_numpy()[checks["post_id"]]).dt.total_seconds()
    assert delay.min() > 0 and 30 < np.median(delay) / 3600 < 42
    with pytest.raises(ValueError, match="^world=.* harmful posts"):
        integrity.fact_checks(dataclasses.replace(harmful, truth=dataclasses.replace(harmful.truth,
                                                                                      post_harmful=None)))
    with pytest.raises(ValueError, match="^sample_share="):
        integrity.fact_checks(harmful, sample_share=0.0)


def test_early_reactions_count_only_the_first_hours(harmful: World) -> None:
    log = harmful.impressions
    everything = integrity.early_reactions(log, harmful.posts, hours=24.0 * 365)
    assert everything["impressions"].sum() == len(log) and everything["click"].sum() == log["click"].sum()
    early = integrity.early_reactions(log, harmful.posts, hours=2.0)
    assert (early <= everything).all().all() and early["impressions"].sum() < len(log)
    post = int(early["impressions"].idxmax())
    created = harmful.posts.loc[post, "created_at"]
    rows = log[(log["post_id"] == post) & (log["timestamp"] < created + pd.Timedelta(hours=2))]
    assert early.loc[post, "impressions"] == len(rows)


def test_the_classifier_finds_harm_in_posts_it_never_saw(harmful: World, checks: pd.DataFrame) -> None:
    until = harmful.config.start_time + pd.Timedelta(days=20)
    classifier = integrity.IntegrityClassifier.fit(harmful, harmful.impressions, checks, until)
    later = harmful.posts.loc[harmful.posts["created_at"] >= until, "post_id"].to_numpy()
    truth = harmful.truth.post_harmful[later]
    text_only = classifier.predict_text(later)
    assert ((0 < text_only) & (text_only < 1)).all()
    assert roc_auc_score(truth, text_only) > 0.7
    with pytest.raises(ValueError, match="^checks=.* at least five verdicts"):
        integrity.IntegrityClassifier.fit(harmful, harmful.impressions, checks, harmful.config.start_time)


def test_demotion_lowers_likely_harm_and_puts_judged_posts_last(harmful: World, checks: pd.DataFrame) -> None:
    until = harmful.config.start_time + pd.Timedelta(days=20)
    classifier = integrity.IntegrityClassifier.fit(harmful, harmful.impressions, checks, until)
    rows = harmful.impressions[harmful.impressions["timestamp"] >= until].head(400).assign(
        requested_at=lambda frame: frame["timestamp"], impressions_so_far=0, clicks_so_far=0, likes_so_far=0,
        hides_so_far=0)
    flat = lambda candidates: np.ones(len(candidates))  # noqa: E731 -- every post alike
    assert np.array_equal(integrity.demoted(flat, None, None, 0.0)(rows), np.ones(len(rows)))
    demoted = integrity.demoted(flat, classifier, None, 2.0)(rows)
    assert np.allclose(demoted, 1 - 2.0 * classifier.predict_candidates(rows))
    judged = integrity.demoted(flat, None, checks, 0.0)(rows)
    known = checks[checks["harmful"]].set_index("post_id")["labelled_at"].reindex(rows["post_id"]).to_numpy()
    arrived = ~pd.isna(known) & (known <= rows["requested_at"].to_numpy())
    assert arrived.any() and (judged[arrived] < judged[~arrived].min()).all()
    with pytest.raises(ValueError, match="^weight="):
        integrity.demoted(flat, classifier, checks, -1.0)


def test_harmful_exposure_splits_impressions_at_the_verdict(harmful: World) -> None:
    post = int(np.flatnonzero(harmful.truth.post_harmful)[0])
    created = harmful.posts.loc[post, "created_at"]
    checks = pd.DataFrame({"post_id": [post], "labelled_at": [created + pd.Timedelta(hours=10)], "harmful": [True]})
    honest = int(np.flatnonzero(~harmful.truth.post_harmful)[0])
    shown = pd.DataFrame({"post_id": [post, post, post, honest],
                          "timestamp": created + pd.to_timedelta([1, 5, 12, 1], unit="h")})
    report = integrity.harmful_exposure(shown, harmful, checks)
    assert report == {"harmful per 1000": 750.0, "before a verdict per 1000": 500.0,
                      "after a verdict per 1000": 250.0, "judged posts, share before": 2 / 3,
                      "most before a verdict": 2.0}


def test_the_demotion_curve_serves_each_setting_and_is_kept(harmful: World, checks: pd.DataFrame,
                                                            tmp_path: Path) -> None:
    start, history, sessions = experiments.test_window(harmful, 21, 2)
    classifier = integrity.IntegrityClassifier.fit(harmful, harmful.impressions, checks, start)
    oracle = policies.oracle_policy(harmful, lambda p: metrics.engagement_score(p, prefix="p_"))
    curve = integrity.demotion_curve(harmful, oracle, classifier, checks, [8.0], sessions, history, folder=tmp_path,
                                     identity=b"oracle")
    assert list(curve["setting"]) == ["none", "verdicts", "demoted"]
    none, verdicts, demoted = (curve.iloc[i] for i in range(3))
    assert verdicts["after a verdict per 1000"] <= none["after a verdict per 1000"]
    assert demoted["harmful per 1000"] < none["harmful per 1000"]
    again = integrity.demotion_curve(harmful, oracle, classifier, checks, [8.0], sessions, history,
                                     folder=tmp_path, identity=b"oracle")
    pd.testing.assert_frame_equal(again, curve)
    assert len(list(tmp_path.glob("integrity-*.json"))) == 1
    with pytest.raises(ValueError, match="^weights="):
        integrity.demotion_curve(harmful, oracle, classifier, checks, [0.0], sessions, history)
