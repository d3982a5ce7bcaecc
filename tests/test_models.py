"""Rankers: calibration correction, the common interface, determinism, cold start, caching, bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from newsfeed import features, models
from newsfeed.models import shipped
from newsfeed.world import REACTIONS, WorldConfig, simulate


@pytest.fixture(scope="module")
def dataset() -> features.Dataset:
    return features.build_dataset(simulate(WorldConfig.at_scale("small", seed=2)))


def tiny_network(**overrides: object) -> models.MultiTask:
    config = models.MultiTaskConfig(hidden=(32,), embedding_dim=4, max_epochs=3, **overrides)
    return models.MultiTask(config, progress=None)


def test_negative_sampling_correction_inverts_the_odds_shift() -> None:
    true = np.array([0.001, 0.05, 0.5])
    rate = 0.1
    inflated = true / (true + (1 - true) * rate)  # what a model sees with 10% of negatives
    np.testing.assert_allclose(models.correct_for_negative_sampling(inflated, rate), true)
    assert models.correct_for_negative_sampling(np.array([0.3]), 1.0)[0] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="negative_rate=0 is invalid"):
        models.correct_for_negative_sampling(true, 0)


def test_downsampling_keeps_every_positive(dataset: features.Dataset) -> None:
    train = dataset.part("train")
    kept = models.downsample_negatives(train, "share", 0.2, seed=1)
    assert kept["share"].sum() == train["share"].sum()
    negatives = (train["share"] == 0).sum()
    assert abs((kept["share"] == 0).sum() - 0.2 * negatives) < 5 * np.sqrt(0.2 * 0.8 * negatives)


@pytest.mark.parametrize("ranker", [models.Chronological(), models.Popularity(), models.logistic_regression()],
                         ids=lambda r: r.name)
def test_every_ranker_predicts_each_reaction_per_row(dataset: features.Dataset, ranker: models.Ranker) -> None:
    valid = dataset.part("valid")
    predicted = ranker.fit(dataset.part("train")).predict(valid)
    assert list(predicted.columns) == list(models.PROBABILITY_COLUMNS)
    assert predicted.index.equals(valid.index)
    assert np.isfinite(ranker.score(valid)).all()


def test_learned_models_beat_popularity_and_are_calibrated(dataset: features.Dataset) -> None:
    train, valid = dataset.part("train"), dataset.part("valid")
    popularity = models.Popularity().fit(train).predict(valid)
    boosted = models.gradient_boosting(trees=60).fit(train).predict(valid)
    assert roc_auc_score(valid["like"], boosted["p_like"]) > roc_auc_score(valid["like"], popularity["p_like"]) + 0.1
    assert boosted["p_like"].mean() == pytest.approx(valid["like"].mean(), rel=0.2)  # corrected for sampling


def test_network_is_deterministic_learns_and_serves_new_users(dataset: features.Dataset) -> None:
    train, valid = dataset.part("train"), dataset.part("valid")
    first = tiny_network().fit(train, valid)
    second = tiny_network().fit(train, valid)
    pd.testing.assert_frame_equal(first.predict(valid), second.predict(valid))
    assert [h["epoch"] for h in first.learning_curve] == list(range(1, len(first.learning_curve) + 1))
    assert roc_auc_score(valid["like"], first.predict(valid)["p_like"]) > 0.75
    stranger = valid.head(3).assign(user_id=10**9, author_id=10**9, topic="knitting")
    assert np.isfinite(first.predict(stranger).to_numpy()).all()
    assert first.n_parameters > 0 and (first.predict_dwell(valid.head(5)) > 0).all()


def test_position_is_explained_not_served(dataset: features.Dataset) -> None:
    network = tiny_network().fit(dataset.part("train"))
    rows = dataset.part("valid").head(50)
    low, top = network.predict(rows.assign(position=10)), network.predict(rows.assign(position=1))
    assert (top["p_click"] > low["p_click"]).mean() > 0.9  # the tower learned position bias
    np.testing.assert_allclose(network.score(rows.assign(position=10)), network.score(rows))


@pytest.mark.parametrize(("overrides", "accepts"), [
    ({"dropout": 1.5}, r"dropout=1.5 is invalid: dropout accepts a number in \[0, 1\)"),
    ({"max_epochs": 0}, "max_epochs=0 is invalid: max_epochs accepts an integer >= 1"),
    ({"max_position": -1}, "max_position=-1 is invalid: max_position accepts an integer >= 1"),
    ({"embedding_weight_decay": -1}, "embedding_weight_decay=-1 is invalid: embedding_weight_decay accepts a number "
                                     ">= 0.0"),
    ({"learning_rate": 0}, "learning_rate=0 is invalid: learning_rate accepts a number > 0.0"),
    ({"hidden": ()}, r"hidden=\(\) is invalid: hidden accepts one or more layer widths >= 1"),
    ({"task_weights": {"click": 1.0}}, "task_weights=.* is invalid: task_weights accepts a non-negative weight for "
                                       "each of click, like, comment, share, hide, dwell")])
def test_bad_network_config_is_refused_with_its_range(overrides: dict, accepts: str) -> None:
    with pytest.raises(ValueError, match=f"^{accepts}"):
        models.MultiTask(models.MultiTaskConfig(**overrides))


def test_a_network_refuses_missing_labels_and_empty_tables(dataset: features.Dataset) -> None:
    """One NaN label among thousands made every weight NaN, silently: refused, naming the column."""
    train, valid = dataset.part("train"), dataset.part("valid")
    holes = train.assign(click=train["click"].astype(float).mask(train.index % 100 == 0))
    with pytest.raises(ValueError, match="'click'.* have some"):
        tiny_network().fit(holes)
    with pytest.raises(ValueError, match="1 row or more"):
        tiny_network().fit(train, valid.iloc[:0])
    with pytest.raises(ValueError, match="table is missing columns \\['user_posts'\\]"):
        tiny_network().fit(train).predict(valid.drop(columns="user_posts"))


@pytest.mark.parametrize("ranker", [models.Popularity(), models.logistic_regression(), tiny_network()],
                         ids=lambda r: r.name)
def test_predicting_before_fit_says_so(dataset: features.Dataset, ranker: models.Ranker) -> None:
    from sklearn.exceptions import NotFittedError

    rows = dataset.part("valid").head(5)
    with pytest.raises(NotFittedError, match=f"this {ranker.name} is not fitted yet: call fit"):
        ranker.predict(rows)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        ranker.score(rows)


def test_final_network_is_cached(tmp_path: Path, dataset: features.Dataset) -> None:
    config = models.MultiTaskConfig(hidden=(16,), embedding_dim=4, max_epochs=2)
    trained = models.final_multitask(dataset, tmp_path, epochs=1, config=config)
    assert trained.config.max_epochs == 1 and len(list(tmp_path.glob("multitask-*.pt"))) == 1
    loaded = models.final_multitask(dataset, tmp_path, config=config)
    valid = dataset.part("valid")
    pd.testing.assert_frame_equal(loaded.predict(valid), trained.predict(valid))
    longer = models.final_multitask(dataset, tmp_path, epochs=2, config=config)  # not the cached 1-epoch network
    assert longer.config.max_epochs == 2 and len(longer.learning_curve) == 2
    assert len(list(tmp_path.glob("multitask-*.pt"))) == 1


def test_a_fitted_network_is_cached_and_replays_its_learning_curve(tmp_path: Path, dataset: features.Dataset) -> None:
    """Chapters 4's and 7's networks: trained once, then loaded with the same predictions and the same printed
    epochs; another configuration, other rows or no validation rows train anew."""
    config = models.MultiTaskConfig(hidden=(16,), embedding_dim=4, max_epochs=2)
    train, valid = dataset.part("train"), dataset.part("valid")
    printed: list[str] = []
    trained = models.fitted_multitask(config, train, valid, tmp_path, progress=printed.append)
    assert len(printed) == 2 and printed[0].startswith("epoch  1: train loss")
    replayed: list[str] = []
    loaded = models.fitted_multitask(config, train, valid, tmp_path, progress=replayed.append)
    assert replayed == printed and loaded.fit_seconds == trained.fit_seconds
    pd.testing.assert_frame_equal(loaded.predict(valid), trained.predict(valid))
    # Another processor's last bits in the features (not in ids, labels or times) load the same network.
    floats = train.select_dtypes("float").columns
    nudged = train.assign(**{c: np.nextafter(train[c].to_numpy(), np.inf) for c in floats})
    assert models.fitted_multitask(config, nudged, valid, tmp_path, progress=None).fit_seconds == trained.fit_seconds
    assert len(list(tmp_path.glob("fitted-*.pt"))) == 1
    other = models.fitted_multitask(replace(config, max_epochs=1), train, valid, tmp_path, progress=None)
    fewer = models.fitted_multitask(config, train.iloc[:-1], valid, tmp_path, progress=None)
    assert len(other.learning_curve) == 1 and len(fewer.learning_curve) == 2
    assert len(list(tmp_path.glob("fitted-*.pt"))) == 3  # one per configuration and rows
    without_validation = models.fitted_multitask(replace(config, max_epochs=1), train, None, tmp_path, progress=None)
    assert "valid_loss" not in without_validation.learning_curve[0]
    assert len(list(tmp_path.glob("fitted-*.pt"))) == 4


def test_final_baselines_are_cached(tmp_path: Path, dataset: features.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    # The cache is under test, not the trees: the boosted baseline with 10 trees instead of the shipped 120.
    monkeypatch.setattr(shipped, "gradient_boosting", lambda seed: models.gradient_boosting(seed, trees=10))
    trained = models.final_baselines(dataset, seed=0, folder=tmp_path)
    assert len(trained) == 4  # reverse-chronological, popularity, logistic regression, boosted trees
    assert len(list(tmp_path.glob("baselines-*.pkl"))) == 1
    loaded = models.final_baselines(dataset, seed=0, folder=tmp_path)
    rows = dataset.part("test").head(200)
    for name, ranker in trained.items():
        pd.testing.assert_frame_equal(loaded[name].predict(rows), ranker.predict(rows))


class _Shifted(models.Ranker):
    """Knows each row's true probabilities, and reports every head 1.5 times too high on the odds scale."""

    name = "shifted"

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> _Shifted:
        return self

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        odds = table[list(models.PROBABILITY_COLUMNS)] / (1 - table[list(models.PROBABILITY_COLUMNS)]) * 1.5
        return odds / (1 + odds)


def test_platt_scaling_recalibrates_each_head_on_fresh_rows_and_keeps_its_order() -> None:
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({f"p_{r}": rng.uniform(0.01, 0.3, 40_000) for r in REACTIONS})
    for reaction in REACTIONS:
        rows[reaction] = (rng.random(len(rows)) < rows[f"p_{reaction}"]).astype(int)
    fresh, later = rows.iloc[:20_000], rows.iloc[20_000:]
    shifted = _Shifted()
    calibrated = models.Calibrated(shifted).fit(fresh)
    before, after = shifted.predict(later), calibrated.predict(later)
    for reaction in REACTIONS:
        ratio = after[f"p_{reaction}"].mean() / later[reaction].mean()
        assert before[f"p_{reaction}"].mean() / later[reaction].mean() > 1.2 and 0.95 < ratio < 1.05, reaction
        assert roc_auc_score(later[reaction], after[f"p_{reaction}"]) == pytest.approx(
            roc_auc_score(later[reaction], before[f"p_{reaction}"]), abs=1e-12)  # monotone: the order stays
    assert calibrated.name == "shifted, recalibrated"
    with pytest.raises(ValueError, match="labels='0 positive click labels of 100' is invalid"):
        models.PlattScaling.fit(before.head(100), later.head(100).assign(click=0))
    with pytest.raises(Exception, match="not fitted"):
        models.Calibrated(shifted).predict(later)


def test_nightly_recalibration_fits_each_day_on_the_days_before_it_only() -> None:
    rng = np.random.default_rng(1)
    days = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.repeat(np.arange(5), 8_000), unit="D")
    rows = pd.DataFrame({"timestamp": days + pd.Timedelta(hours=12)})
    for reaction in REACTIONS:
        rows[f"p_{reaction}"] = rng.uniform(0.01, 0.3, len(rows))
        rows[reaction] = (rng.random(len(rows)) < rows[f"p_{reaction}"]).astype(int)
    nightly = models.CalibratedNightly(_Shifted(), first_days=2).fit(rows)
    assert [day.day for day in nightly.scaling_.scalings] == [3, 4, 5, 6]  # days 3-5, and the day after the last
    later = rows[rows["timestamp"] >= pd.Timestamp("2026-01-03")]
    after = nightly.predict(later)
    for reaction in REACTIONS:
        assert 0.95 < after[f"p_{reaction}"].mean() / later[reaction].mean() < 1.05, reaction
    # Day 3's scaling saw days 1-2 only: its own labels (here all flipped to 1) cannot move it.
    leaked = rows.assign(click=np.where(rows["timestamp"].dt.day == 3, 1, rows["click"]))
    again = models.CalibratedNightly(_Shifted(), first_days=2).fit(leaked)
    day3 = later["timestamp"].dt.day == 3
    assert np.array_equal(again.predict(later[day3]), after[day3])
    assert nightly.name == "shifted, recalibrated nightly"
    with pytest.raises(ValueError, match="timestamps='rows from 2026-01-01' is invalid"):
        nightly.predict(rows)
    with pytest.raises(ValueError, match="first_days=0 is invalid"):
        models.CalibratedNightly(_Shifted(), first_days=0)
    with pytest.raises(ValueError, match="labels=.2 days of rows. is invalid: labels accepts more than 2 days"):
        models.CalibratedNightly(_Shifted()).fit(rows[rows["timestamp"] < pd.Timestamp("2026-01-03")])
