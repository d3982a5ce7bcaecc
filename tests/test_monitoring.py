"""Drift statistics, thresholds and the daily monitoring tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from newsfeed import monitoring


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_psi_of_identical_samples_is_zero(rng: np.random.Generator) -> None:
    sample = rng.normal(size=5000)
    assert monitoring.psi(sample, sample) == pytest.approx(0.0, abs=1e-12)
    assert monitoring.psi(rng.normal(size=20000), rng.normal(size=20000)) < 0.01


def test_psi_of_shifted_samples_is_above_the_alert_threshold(rng: np.random.Generator) -> None:
    reference = rng.normal(size=5000)
    assert monitoring.psi(reference, rng.normal(0.3, 1, size=5000)) > monitoring.PSI_WARN
    assert monitoring.psi(reference, rng.normal(1.0, 1, size=5000)) > monitoring.PSI_ALERT


def test_psi_counts_values_outside_the_reference_range(rng: np.random.Generator) -> None:
    reference = rng.uniform(0, 1, size=2000)
    shares = monitoring.bin_shares(reference, reference + 5)
    assert shares["current"].iloc[-1] == pytest.approx(1.0)
    assert shares["reference"].sum() == pytest.approx(1.0)


def test_psi_handles_unseen_categories() -> None:
    reference = ["ios"] * 50 + ["web"] * 50
    current = ["ios"] * 40 + ["web"] * 40 + ["tablet"] * 20
    shares = monitoring.bin_shares(reference, current, categorical=True)
    assert monitoring.UNSEEN in shares.index
    assert shares.loc[monitoring.UNSEEN, "current"] == pytest.approx(0.2)
    value = monitoring.psi(reference, current, categorical=True)
    assert np.isfinite(value) and value > monitoring.PSI_WARN
    assert monitoring.psi(reference, reference, categorical=True) == pytest.approx(0.0)


def test_psi_gives_missing_values_their_own_bin() -> None:
    shares = monitoring.bin_shares([1.0, 2.0, 3.0, 4.0], [1.0, np.nan, 3.0, np.nan], bins=2)
    assert shares.loc["(missing)", "current"] == pytest.approx(0.5)


def test_ks_detects_a_shift(rng: np.random.Generator) -> None:
    reference = rng.normal(size=3000)
    _, same_p = monitoring.ks_test(reference, rng.normal(size=3000))
    statistic, shifted_p = monitoring.ks_test(reference, rng.normal(0.5, 1, size=3000))
    assert same_p > 0.01
    assert shifted_p < 1e-6 and statistic > 0.1


def test_chi_square_detects_a_new_category() -> None:
    reference = ["a"] * 500 + ["b"] * 500
    _, p_same = monitoring.chi_square_test(reference, ["a"] * 250 + ["b"] * 250)
    _, p_new = monitoring.chi_square_test(reference, ["a"] * 200 + ["b"] * 200 + ["c"] * 100)
    assert p_same > 0.5 and p_new < 1e-6


def test_status_thresholds() -> None:
    assert monitoring.status(0.05) == "ok"
    assert monitoring.status(0.15) == "warn"
    assert monitoring.status(0.3) == "alert"
    assert monitoring.status(pd.Series([0.0, 0.2, 0.5])).tolist() == ["ok", "warn", "alert"]
    with pytest.raises(ValueError, match="value=nan is invalid"):  # not computed is not healthy
        monitoring.status(np.nan)
    with pytest.raises(ValueError, match="value=\\[1\\] is invalid"):
        monitoring.status(pd.Series([0.0, np.nan]))


def test_psi_bins_of_a_discrete_feature_are_closed_on_the_right() -> None:
    """Many features are counts (hashtags, posts), whose values sit on the bin edges: each edge's value belongs
    to the bin that ends there, ``(lo, hi]``."""
    counts = [0] * 50 + [1] * 30 + [2] * 20
    shares = monitoring.bin_shares(counts, counts, bins=4)["reference"]  # edges at the quantiles 0, 0.5, 1
    assert shares.to_dict() == {"(-inf, 0]": 0.5, "(0, 0.5]": 0.0, "(0.5, 1]": 0.3, "(1, inf]": 0.2}


def test_drift_report_flags_the_drifting_features(rng: np.random.Generator) -> None:
    reference = pd.DataFrame({"x": rng.normal(size=4000), "y": rng.normal(size=4000),
                              "device": rng.choice(["ios", "web"], size=4000)})
    current = pd.DataFrame({"x": rng.normal(size=4000), "y": rng.normal(1.0, 1, size=4000),
                            "device": rng.choice(["ios", "web", "tablet"], size=4000)})
    report = monitoring.drift_report(reference, current, numeric=["x", "y"], categorical=["device"])
    assert report.loc["x", "status"] == "ok"
    assert report.loc["y", "status"] == "alert" and report.loc["device", "status"] == "alert"
    assert report.loc["device", "unseen_share"] == pytest.approx(1 / 3, abs=0.03)
    assert report.index[-1] == "x"  # sorted by PSI


def test_daily_tables() -> None:
    days = pd.Series([0, 0, 0, 0, 1, 1, 1, 1])
    labels = pd.DataFrame({"like": [0, 1, 0, 1, 0, 1, 1, 0]})
    predictions = pd.DataFrame({"p_like": [0.1, 0.9, 0.2, 0.8, 0.9, 0.1, 0.2, 0.8]})
    quality = monitoring.daily_quality(labels, predictions, days, reactions=("like",), oracle=predictions)
    assert quality.loc[0, "auc_like"] == 1.0 and quality.loc[1, "auc_like"] == 0.0
    assert quality.loc[0, "calibration_like"] == pytest.approx(1.0)
    # Mean predicted over observed: 0.25 predicted where half the rows are liked reads 0.5 (under-predicting).
    low = monitoring.daily_quality(labels, predictions.assign(p_like=0.25), days, reactions=("like",))
    assert low["calibration_like"].tolist() == pytest.approx([0.5, 0.5])
    assert quality.loc[0, "lift_share_like"] == pytest.approx(1.0)
    current = pd.DataFrame({"user_id": [1, 2, 3, 9, 1, 1, 9, 9], "session_id": [1, 1, 2, 3, 4, 4, 5, 5],
                            "device": ["ios", "ios", "web", "web", "tablet", "ios", "ios", "tablet"]})
    reference = pd.DataFrame({"user_id": [1, 2, 3], "device": ["ios", "web", "web"]})
    ops = monitoring.daily_operations(current, reference, days)
    assert ops["requests"].tolist() == [4, 4] and ops["sessions"].tolist() == [3, 2]
    assert ops["unseen_device_share"].tolist() == [0.0, 0.5]
    assert ops["cold_start_user_share"].tolist() == [0.25, 0.5]
    assert monitoring.day_index(pd.Series(pd.to_datetime(["2026-01-05 10:00", "2026-01-07 01:00"])),
                                "2026-01-05").tolist() == [0, 2]


@pytest.mark.parametrize("call, name", [
    (lambda: monitoring.psi([], [1.0]), "reference"),
    (lambda: monitoring.psi([1.0, 2.0], [1.0], bins=1), "bins"),
    (lambda: monitoring.psi([1.0, 2.0], [1.0], epsilon=0), "epsilon"),
    (lambda: monitoring.psi([np.nan, np.nan], [1.0]), "reference"),
    (lambda: monitoring.ks_test(["a", "b"], [1.0]), "reference"),
    (lambda: monitoring.status(0.2, warn=0.3, alert=0.1), "alert"),
    (lambda: monitoring.status(0.2, warn=-1), "warn"),
    (lambda: monitoring.drift_report(pd.DataFrame({"x": [1.0]}), pd.DataFrame({"x": [1.0]})), "numeric"),
    (lambda: monitoring.drift_report(pd.DataFrame({"x": [1.0]}), pd.DataFrame({"z": [1.0]}), numeric=["x"]),
     "current"),
    (lambda: monitoring.daily_quality(pd.DataFrame({"like": [1]}), pd.DataFrame({"p_like": [1.0]}),
                                      pd.Series([0, 1])), "aligned"),
    (lambda: monitoring.daily_quality(pd.DataFrame({"like": [1]}), pd.DataFrame({"p_like": [1.0]}),
                                      pd.Series([0]), reactions=("share",)), "reactions"),
])
def test_bad_inputs_raise_naming_the_parameter(call, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()


def test_a_warm_start_learns_from_new_rows_and_leaves_the_model_it_started_from(small) -> None:
    """One more pass over later rows moves the network towards them (its loss on them falls), keeps its
    vocabularies, and returns a copy: the model it started from predicts as before."""
    from newsfeed import features, models

    dataset = features.build_dataset(small, seed=0, cache_dir=None)
    first, later = dataset.part("train"), dataset.part("test")
    model = models.MultiTask(models.MultiTaskConfig(hidden=(16,), max_epochs=1, seed=0), progress=None).fit(first)
    before = model.predict(later)
    updated = monitoring.warm_started(model, later, epochs=3)
    pd.testing.assert_frame_equal(model.predict(later), before)
    assert updated.users_ is not model.users_ and updated.users_.known.equals(model.users_.known)

    def loss(ranker) -> float:
        predicted = ranker.predict(later)["p_like"].clip(1e-7, 1 - 1e-7)
        return float(-(later["like"] * np.log(predicted) + (1 - later["like"]) * np.log(1 - predicted)).mean())

    assert loss(updated) < loss(model)
    with pytest.raises(ValueError, match="epochs=0 is invalid"):
        monitoring.warm_started(model, later, epochs=0)
    with pytest.raises(ValueError, match="model='str' is invalid"):
        monitoring.warm_started("model", later)
