"""Data preparation: cleaning, point-in-time correctness, encoders on edge cases, splits and embeddings."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from newsfeed import features
from newsfeed.world import REACTIONS, World, WorldConfig, simulate

T0 = pd.Timestamp("2026-01-05")  # a Monday


@pytest.fixture(scope="module")
def world() -> World:
    """The small world with seed 4, simulated once for every test here that needs realistic data."""
    return simulate(WorldConfig.at_scale("small", seed=4))


@pytest.fixture(scope="module")
def log(world: World) -> pd.DataFrame:
    return features.clean_impressions(world.impressions)[0]


def tiny_log() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two users, two posts by author 10, four impressions an hour apart."""
    posts = pd.DataFrame({"post_id": [0, 1], "author_id": [10, 10], "created_at": [T0, T0],
                          "topic": ["pets", "food"], "media_type": ["text", "video"],
                          "text": ["puppy", None], "hashtags": ["", "#food"]})
    log = pd.DataFrame({
        "impression_id": [0, 1, 2, 3], "user_id": [1, 2, 1, 2], "post_id": [0, 0, 0, 1],
        "timestamp": [T0 + pd.Timedelta(hours=h) for h in (1, 2, 3, 4)],
        "click": [1, 0, 1, 0], "like": [1, 1, 0, 0], "comment": [0, 0, 0, 0], "share": [0, 0, 0, 0],
        "hide": [0, 0, 0, 1], "dwell_seconds": [10.0, 2.0, 4.0, 1.0],
    })
    return log, posts


def test_aggregates_use_only_the_past_and_never_the_row_itself() -> None:
    log, posts = tiny_log()
    history = features.LogAggregates(log, posts).aggregates(log)
    assert history["post_impressions"].tolist() == [0, 1, 2, 0]
    assert history["post_like"].tolist() == [0, 1, 2, 0]  # row 1's own like is not in its feature
    assert history["user_like"].tolist() == [0, 0, 1, 1]
    assert history["user_author_impressions"].tolist() == [0, 0, 1, 1]
    assert history["user_topic_impressions"].tolist() == [0, 0, 1, 0]


def test_changing_a_label_never_changes_that_rows_features() -> None:
    log, posts = tiny_log()
    before = features.LogAggregates(log, posts).aggregates(log)
    flipped = log.assign(like=log["like"].where(log.index != 2, 1), click=log["click"].where(log.index != 2, 0))
    after = features.LogAggregates(flipped, posts).aggregates(flipped)
    pd.testing.assert_series_equal(before.loc[2], after.loc[2])


def test_affinity_forgets_by_a_factor_e_a_week() -> None:
    log, posts = tiny_log()
    later = pd.DataFrame({"user_id": 1, "post_id": 1,
                          "timestamp": [T0 + pd.Timedelta(hours=2), T0 + pd.Timedelta(hours=2 + 168)]})
    decayed = features.LogAggregates(log.head(1), posts).aggregates(later)["user_author_engagement_decayed"]
    assert decayed.iloc[0] > 0 and decayed.iloc[1] / decayed.iloc[0] == pytest.approx(np.exp(-1))


def test_events_at_the_same_instant_are_not_the_past() -> None:
    log, posts = tiny_log()
    same_time = log.assign(timestamp=T0 + pd.Timedelta(hours=1))
    history = features.LogAggregates(same_time, posts).aggregates(same_time)
    assert (history["post_impressions"] == 0).all()


def test_as_of_join_matches_brute_force_on_a_simulated_world(world: World, log: pd.DataFrame) -> None:
    sample = log.sample(300, random_state=0)
    history = features.LogAggregates(log, world.posts).aggregates(sample)
    for index, row in sample.iterrows():
        earlier = log[(log["timestamp"] < row["timestamp"]) & (log["post_id"] == row["post_id"])]
        assert history.loc[index, "post_impressions"] == len(earlier)
        assert history.loc[index, "post_like"] == earlier["like"].sum()
        mine = log[(log["timestamp"] < row["timestamp"]) & (log["user_id"] == row["user_id"])]
        assert history.loc[index, "user_dwell"] == pytest.approx(mine["dwell_seconds"].sum())


def test_clean_users_maps_spellings_and_counts_changes() -> None:
    users = pd.DataFrame({"user_id": range(6), "account_type": ["person"] * 5 + ["page"],
                          "age": [30.0, 0.0, 212.0, np.nan, 45.0, np.nan],
                          "country": ["US", "us ", "United States", "Deutschland", "Atlantis", "FR"]})
    clean, report = features.clean_users(users)
    assert clean["country"].tolist()[:4] == ["US", "US", "US", "DE"]
    assert pd.isna(clean.loc[4, "country"])  # unknown becomes missing, and is counted
    assert clean["age"].isna().tolist() == [False, True, True, True, False, True]
    assert clean["age_was_impossible"].sum() == 2
    counts = report.set_index("problem")
    assert counts.loc["country unknown or missing", "rows after"] == 1
    assert counts.iloc[2]["rows before"] == 2


def test_clean_impressions_removes_exact_retries_only() -> None:
    log, _ = tiny_log()
    doubled = pd.concat([log, log.iloc[[1, 3]]])
    clean, removed = features.clean_impressions(doubled)
    assert removed == 2 and len(clean) == len(log)
    assert clean["timestamp"].is_monotonic_increasing


def training_like_table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({name: rng.random(n) for name in features.NUMERIC_FEATURES})
    for name, values in {"topic": ["pets", "food"], "media_type": ["text", "video"], "device": ["ios", "web"],
                         "source": ["friend", "follow"], "country": ["US", "DE"], "weekday": ["Monday"]}.items():
        table[name] = rng.choice(values, n)
    table["age"] = rng.integers(18, 70, n).astype(float)
    return table


def test_unseen_categories_encode_as_zeros() -> None:
    pipeline = features.feature_pipeline().fit(training_like_table())
    row = training_like_table(1, seed=1).assign(device="tablet", topic="knitting")
    encoded = pd.DataFrame(pipeline.transform(row), columns=pipeline.get_feature_names_out())
    assert encoded.filter(regex="^device_").eq(0).all(axis=None)
    assert encoded.filter(regex="^topic_").eq(0).all(axis=None)


@pytest.mark.parametrize("strategy", ["mean", "median", "indicator"])
def test_all_missing_age_keeps_the_columns(strategy: str) -> None:
    table = training_like_table()
    complete = features.feature_pipeline(age=strategy).fit(table)
    empty = features.feature_pipeline(age=strategy).fit(table.assign(age=np.nan))
    assert empty.transform(table).shape == complete.transform(table).shape
    assert np.isfinite(empty.transform(table.assign(age=np.nan))).all()


def test_missing_indicator_adds_a_column_and_bad_strategy_is_refused() -> None:
    table = training_like_table().assign(age=lambda t: t["age"].mask(t.index % 3 == 0))
    median = features.feature_pipeline(age="median").fit(table)
    indicator = features.feature_pipeline(age="indicator").fit(table)
    assert len(indicator.get_feature_names_out()) == len(median.get_feature_names_out()) + 1
    none = features.feature_pipeline(age="none").fit(table)
    assert "age" not in none.get_feature_names_out()
    with pytest.raises(ValueError, match="age='zero' is invalid"):
        features.feature_pipeline(age="zero")


def test_weekly_split_and_smoothing() -> None:
    split = features.weekly_split("2026-01-05")
    stamps = pd.Series(pd.to_datetime(["2026-01-05", "2026-01-18 23:59", "2026-01-19", "2026-01-26"], format="ISO8601"))
    assert split.assign(stamps).tolist() == ["train", "train", "valid", "test"]
    with pytest.raises(ValueError, match="train_weeks=0 is invalid: train_weeks accepts an integer >= 1"):
        features.weekly_split("2026-01-05", train_weeks=0)
    with pytest.raises(ValueError, match="train_weeks=1.5 is invalid: train_weeks accepts an integer >= 1"):
        features.weekly_split("2026-01-05", train_weeks=1.5)
    with pytest.raises(ValueError, match="start='not a date' is invalid: start accepts a date"):
        features.weekly_split("not a date")
    rate = features.smoothed_rate(pd.Series([0.0, 1.0, 100.0]), pd.Series([0.0, 1.0, 100.0]), 0.1)
    assert rate.tolist() == pytest.approx([0.1, 2 / 11, 101 / 110])


def test_text_vectors_learn_only_past_vocabulary() -> None:
    posts = pd.DataFrame({"post_id": range(6), "created_at": [T0] * 4 + [T0 + pd.Timedelta(days=9)] * 2,
                          "text": ["puppy kitten vet", "puppy vet leash", "election senate vote",
                                   "vote senate ballot", "quantum quasar", None]})
    vectors = features.text_vectors(posts, fit_until=T0 + pd.Timedelta(days=1), dimensions=2)
    assert vectors.shape == (6, 2)
    assert np.allclose(vectors.loc[4], 0) and np.allclose(vectors.loc[5], 0)  # unknown words, no text
    assert features.nearest_neighbours(vectors.to_numpy(), 0, k=1).tolist() == [1]


def test_feature_table_serves_any_request_like_a_training_row(world: World, log: pd.DataFrame) -> None:
    users, _ = features.clean_users(world.users)
    aggregates = features.LogAggregates(log, world.posts)
    rows = log.iloc[[100, 5000, 20000]]
    as_training = features.feature_table(log, users, world.edges, aggregates).loc[rows.index]
    request = rows[list(features.REQUEST_COLUMNS)]
    as_serving = features.feature_table(request, users, world.edges, aggregates)
    shared = [c for c in as_serving.columns if c not in (*REACTIONS, "dwell_seconds")]
    pd.testing.assert_frame_equal(as_serving[shared], as_training[shared])
    with pytest.raises(ValueError, match="requests is missing columns"):
        aggregates.aggregates(request.drop(columns="timestamp"))


def test_feature_table_refuses_requests_it_cannot_answer(world: World, log: pd.DataFrame) -> None:
    users, _ = features.clean_users(world.users)
    aggregates = features.LogAggregates(log, world.posts)
    request = log.iloc[[100, 200]][list(features.REQUEST_COLUMNS)]
    with pytest.raises(ValueError, match=r"requests is missing columns \['device'\]: requests accepts a DataFrame"):
        features.feature_table(request.drop(columns="device"), users, world.edges, aggregates)
    unknown = request.assign(post_id=[3, 10**9])
    with pytest.raises(ValueError, match=r"requests.post_id=\[1000000000\] is invalid: requests.post_id accepts "
                                         "the id of a post"):
        features.feature_table(unknown, users, world.edges, aggregates)
    with pytest.raises(ValueError, match="aggregates='DataFrame' is invalid: aggregates accepts an AggregateSource"):
        features.feature_table(request, users, world.edges, log)


def test_time_features_read_the_clock_of_the_request(world: World, log: pd.DataFrame) -> None:
    users, _ = features.clean_users(world.users)
    request = log.iloc[[0, 0, 0]][list(features.REQUEST_COLUMNS)].reset_index(drop=True)
    request["timestamp"] = pd.to_datetime(["2026-01-05 18:30", "2026-01-10 06:00", "2026-01-11 00:00"])
    table = features.feature_table(request, users, world.edges, features.LogAggregates(log, world.posts))
    assert table["weekday"].tolist() == ["Monday", "Saturday", "Sunday"]
    hours = np.arctan2(table["hour_sin"], table["hour_cos"]) % (2 * np.pi) * 24 / (2 * np.pi)
    assert hours.tolist() == pytest.approx([18.5, 6.0, 0.0])


def test_snapshot_lookup_equals_the_as_of_join(world: World, log: pd.DataFrame) -> None:
    cutoff = pd.Timestamp("2026-01-26")
    before = log[log["timestamp"] < cutoff]
    later = log[log["timestamp"] >= cutoff].sample(400, random_state=1)
    snapshot = features.LogAggregates(before, world.posts).aggregates(later)  # every request after the log
    as_of = features.LogAggregates(log, world.posts).aggregates(later.assign(timestamp=cutoff - pd.Timedelta("1ms")))
    as_of["user_written_posts"] = snapshot["user_written_posts"]  # posts keep being written after the cutoff
    as_of["user_written_topic_posts"] = snapshot["user_written_topic_posts"]
    decayed = "user_author_engagement_decayed"  # decays with the request time, so compare the rest exactly
    pd.testing.assert_frame_equal(snapshot.drop(columns=decayed), as_of.drop(columns=decayed), check_exact=False)


def test_the_as_of_index_answers_exactly_what_the_as_of_join_does(world: World, log: pd.DataFrame) -> None:
    aggregates = features.LogAggregates(log, world.posts)
    requests = features.aggregates.with_post_info(log.sample(2000, random_state=2), aggregates.post_info)
    # Requests at an event's own instant (ties), keys the log never saw, a missing topic.
    no_topic = requests.head(50).copy()
    no_topic["topic"] = pd.Series(np.nan, index=no_topic.index, dtype=requests["topic"].dtype)
    requests = pd.concat([requests, requests.head(50).assign(user_id=10**9), no_topic], ignore_index=True)
    for keys, table, prefix in aggregates.tables:
        expected = features.aggregates.as_of_join(requests, table, keys, prefix)
        index = features.aggregates.AsOfIndex.of(table, keys)
        pd.testing.assert_frame_equal(index.join(requests, prefix), expected, check_exact=True)
    # Missing topics among the events, and a running sum that met a missing value.
    table = aggregates.tables[4][1].copy()
    table.loc[table.index[::7], "topic"] = np.nan
    table.loc[table.index[::11], "click"] = np.nan
    expected = features.aggregates.as_of_join(requests, table, ["user_id", "topic"], "t_")
    joined = features.aggregates.AsOfIndex.of(table, ["user_id", "topic"]).join(requests, "t_")
    pd.testing.assert_frame_equal(joined, expected, check_exact=True)


def test_author_followers_count_only_earlier_edges() -> None:
    log, posts = tiny_log()
    users = pd.DataFrame({"user_id": [1, 2, 10], "account_type": ["person", "person", "page"],
                          "age": [30.0, 40.0, np.nan], "country": ["US", "US", "US"],
                          "signup_date": [T0 - pd.Timedelta(days=9)] * 3})
    edges = pd.DataFrame({"user_id": [1, 2], "target_id": [10, 10], "edge_type": ["follow", "follow"],
                          "created_at": [T0, T0 + pd.Timedelta(hours=2, minutes=30)]})
    requests = log.assign(device="ios", position=1, source="follow")
    table = features.feature_table(requests, users, edges, features.LogAggregates(log, posts))
    assert table["author_followers"].tolist() == [1, 1, 2, 2]
    assert table["is_follow"].tolist() == [1, 0, 1, 1]  # user 2 followed at 2:30, after its 2:00 impression
    # An edge made at the very instant of a request is not yet known to it (the request came first).
    at_once = edges.assign(created_at=[T0, T0 + pd.Timedelta(hours=2)])
    same = features.feature_table(requests, users, at_once, features.LogAggregates(log, posts))
    assert same["is_follow"].tolist() == [1, 0, 1, 1] and same["author_followers"].tolist() == [1, 1, 2, 2]
    aggregates = features.LogAggregates(log, posts)
    with pytest.raises(ValueError, match="followers='1 values' is invalid: followers accepts one count per request"):
        features.feature_table(requests, users, edges, aggregates, followers=np.ones(1))
    given = features.feature_table(requests, users, edges, aggregates, followers=np.array([5, 6, 7, 8]))
    assert given["author_followers"].tolist() == [5, 6, 7, 8]


@pytest.mark.parametrize("strategy", ["mean", "median", "indicator", "none"])
def test_compiled_transform_equals_the_fitted_pipeline(strategy: str) -> None:
    train = training_like_table().assign(age=lambda t: t["age"].mask(t.index % 4 == 0))
    train.loc[train.index % 50 == 1, "topic"] = "rare"  # below min_frequency: the infrequent column
    train.loc[train.index % 7 == 2, "country"] = np.nan  # a missing category is a category
    pipeline = features.feature_pipeline(age=strategy).fit(train)
    compiled = features.CompiledTransform(pipeline)
    served = training_like_table(60, seed=2)
    served.loc[:9, "device"] = "tablet"  # unseen: all zeros
    served.loc[10:19, "topic"] = "rare"
    served.loc[20:29, "country"] = np.nan
    served.loc[30:39, "age"] = np.nan
    assert compiled.n_features_out == pipeline.transform(served).shape[1]
    assert np.array_equal(compiled.transform(served), pipeline.transform(served))
    restored = pickle.loads(pickle.dumps(compiled))  # it travels inside a saved model
    assert np.array_equal(restored.transform(served), pipeline.transform(served))


def test_compiled_transform_refuses_what_it_cannot_reproduce() -> None:
    with pytest.raises(ValueError, match="accepts a fitted ColumnTransformer"):
        features.CompiledTransform(features.feature_pipeline())
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import MinMaxScaler
    odd = ColumnTransformer([("minmax", MinMaxScaler(), ["age"])]).fit(training_like_table())
    with pytest.raises(TypeError, match="step=MinMaxScaler"):
        features.CompiledTransform(odd)


def test_topics_read_from_text_beat_the_noisy_labels(world: World) -> None:
    split = features.weekly_split(world.config.start)
    posts = features.clean_posts(world.posts, split.train_end)
    true = world.true_topics(world.posts["post_id"])
    assert posts["topic_label"].equals(world.posts["topic"])
    label_accuracy = (posts["topic_label"].to_numpy() == true).mean()
    assert (posts["topic"].to_numpy() == true).mean() > label_accuracy + 0.03
    with pytest.raises(ValueError, match="fit_until=.* is invalid"):
        features.infer_topics(world.posts, world.posts["created_at"].min())
    with pytest.raises(ValueError, match="folds=1 is invalid"):
        features.infer_topics(world.posts, split.train_end, folds=1)


def test_build_dataset_is_cached_by_content(world: World, tmp_path) -> None:
    """The second build of the same world reads the cache; a world whose tables differ builds anew."""
    first = features.build_dataset(world, cache_dir=tmp_path)
    cached = list(tmp_path.glob("dataset-*.pkl"))
    assert len(cached) == 1
    again = features.build_dataset(world, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(again.table, first.table)
    assert again.table is not first.table  # a fresh copy: a chapter's changes cannot reach the next reader
    pd.testing.assert_frame_equal(features.build_dataset(world, cache_dir=None).table, first.table)
    other = World(config=world.config, truth=world.truth, users=world.users, posts=world.posts,
                  edges=world.edges, sessions=world.sessions, impressions=world.impressions.iloc[:-1])
    features.build_dataset(other, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("dataset-*.pkl"))) == 2
