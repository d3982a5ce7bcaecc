"""The simulated world: schema (as documented), determinism, validation, realism bands, ground truth."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from newsfeed import features, vocabulary
from newsfeed.metrics import engagement_score, gini, ndcg_at_k, top_share
from newsfeed.world import (
    REACTIONS,
    DriftConfig,
    World,
    WorldConfig,
    fingerprint,
    legacy_ranker,
    main,
    simulate,
    storage,
)

DATASHEET = Path(__file__).resolve().parent.parent / "data" / "README.md"


@pytest.fixture(scope="module")
def default() -> World:
    """The book's default world, as the chapters get it: read from data/ when the simulator's code has not changed
    since it was cached there (the cache is keyed by that code), generated now otherwise."""
    world = storage.load_world("default", seed=0)
    assert world.config == WorldConfig()
    return world


def documented_schema() -> dict[str, dict[str, str]]:
    """Table -> {column: dtype} as written in the datasheet's schema tables."""
    schema: dict[str, dict[str, str]] = {}
    table = None
    for line in DATASHEET.read_text().splitlines():
        heading = re.match(r"### `(\w+)`", line)
        if heading:
            table = heading.group(1)
            schema[table] = {}
            continue
        row = re.match(r"\| (\w+) \| ([\w\[\]]+) \|", line)
        if table and row and row.group(1) != "column":
            schema[table][row.group(1)] = row.group(2)
    return schema


def test_tables_match_the_datasheet(small: World) -> None:
    schema = documented_schema()
    assert set(schema) == set(World.TABLES)
    for name in World.TABLES:
        frame = getattr(small, name)
        assert list(frame.columns) == list(schema[name]), name
        actual = {column: str(dtype) for column, dtype in frame.dtypes.items()}
        assert actual == schema[name], name


def content_hash(world: World) -> str:
    digests = [pd.util.hash_pandas_object(getattr(world, name), index=False).sum() for name in World.TABLES]
    digests.append(pd.util.hash_pandas_object(world.truth.impressions, index=False).sum())
    return "-".join(str(int(d)) for d in digests)


def test_same_seed_same_world_and_other_seed_differs(small: World) -> None:
    again = simulate(WorldConfig.at_scale("small", seed=1))
    other = simulate(WorldConfig.at_scale("small", seed=2))
    assert content_hash(again) == content_hash(small)
    assert content_hash(other) != content_hash(small)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"n_people": -5}, "n_people"),
    ({"passive_share": 1.5}, "passive_share"),
    ({"duplicate_event_share": -0.1}, "duplicate_event_share"),
    ({"n_days": 3}, "n_days"),
    ({"seed": 1.5}, "seed"),
    ({"start": "not a date"}, "start"),
    ({"sessions_per_day": float("nan")}, "sessions_per_day"),
    ({"drift": DriftConfig(trending_topic="knitting")}, "drift.trending_topic"),
    ({"drift": DriftConfig(start_day=40)}, "drift.start_day"),
    ({"hub_share": 0.5}, "hub_share"),
    ({"hub_degree": 0}, "hub_degree"),
    ({"harmful_share": 1.2}, "harmful_share"),
    ({"harmful_appeal": -1.0}, "harmful_appeal"),
    ({"spam_posts": -3}, "spam_posts"),
    ({"spam_posts": 10, "spam_accounts": 0}, "spam_accounts"),
    ({"spam_posts": 10, "spam_day": 28}, "spam_day"),
])
def test_bad_config_names_the_field_and_the_range(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(field)}=.* accepts "):
        WorldConfig(**overrides)


def test_unknown_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="scale='huge' is invalid: scale accepts one of small, default, large"):
        WorldConfig.at_scale("huge")
    with pytest.raises(ValueError, match="scale="):
        storage.load_world(scale="huge")


def test_dirty_data_is_there(small: World) -> None:
    people = small.users[small.users["account_type"] == "person"]
    assert people["age"].isna().mean() > 0.05
    assert ((people["age"] <= 0) | (people["age"] > 120)).sum() > 0
    assert people["country"].str.strip().str.len().gt(2).any()  # spelled-out variants
    assert small.impressions["impression_id"].duplicated().sum() > 0
    assert small.posts["text"].isna().any()
    # Missing age is informative: privacy-minded people leave it blank more often.
    missing = people["age"].isna().to_numpy()
    privacy = small.truth.privacy_minded
    assert missing[privacy].mean() > 2 * missing[~privacy].mean()


def test_realism_bands(default: World) -> None:
    impressions = default.impressions.drop_duplicates("impression_id")
    rates = impressions[list(REACTIONS)].mean()
    assert 0.03 < rates["click"] < 0.15
    assert 0.02 < rates["like"] < 0.08
    assert rates["comment"] < 0.01 and rates["share"] < 0.01 and rates["hide"] < 0.01
    dwell = impressions["dwell_seconds"]
    assert dwell.quantile(0.99) > 5 * dwell.median()  # heavy-tailed
    engaged = impressions[["click", "like", "comment", "share"]].sum(axis=1).groupby(impressions["post_id"]).sum()
    assert top_share(engaged.reindex(default.posts["post_id"], fill_value=0).to_numpy(), 0.01) >= 0.15
    sessions = default.sessions.groupby("user_id").size().reindex(range(default.n_people), fill_value=0)
    assert gini(sessions.to_numpy()) > 0.4
    ctr = impressions[impressions["position"] <= 10].groupby("position")["click"].mean()
    assert ctr.iloc[0] > 2.5 * ctr.iloc[-1]
    assert (ctr.diff().dropna() < 0.01).all()  # falls with position (noise allowed)
    friends = default.edges[default.edges["edge_type"] == "friend"].groupby("user_id").size()
    assert friends.max() > 5 * friends.median()  # heavy-tailed degree


def test_ground_truth_beats_popularity_beats_random(default: World) -> None:
    impressions = default.impressions.drop_duplicates("impression_id").reset_index(drop=True)
    last_week = (impressions["timestamp"] >= pd.Timestamp("2026-01-26")).to_numpy()
    test = impressions[last_week].reset_index(drop=True)
    args = (test["user_id"], test["post_id"], 1, test["timestamp"], test["device"])
    relevance = engagement_score(default.sample_outcomes(*args, seed=3)).to_numpy()
    groups = test["session_id"].to_numpy()
    oracle = ndcg_at_k(groups, engagement_score(default.probabilities(*args), prefix="p_").to_numpy(), relevance)
    counts = features.LogAggregates(impressions, default.posts).aggregates(impressions)
    popularity = features.smoothed_rate(counts["post_engagement"], counts["post_impressions"],
                                        features.ENGAGEMENT_PRIOR)
    popular = ndcg_at_k(groups, popularity.to_numpy()[last_week], relevance)
    random = ndcg_at_k(groups, np.random.default_rng(0).random(len(test)), relevance)
    assert oracle > popular + 0.08
    assert popular > random + 0.02


def test_logged_probabilities_equal_the_truth_method(small: World) -> None:
    logged = small.impressions.drop_duplicates("impression_id").sort_values("impression_id").head(500)
    again = small.probabilities(logged["user_id"], logged["post_id"], logged["position"], logged["timestamp"],
                                logged["device"])
    stored = small.logged_probabilities(logged["impression_id"])
    assert stored.index.equals(logged.index)
    for column in [f"p_{r}" for r in REACTIONS] + ["expected_dwell"]:
        np.testing.assert_allclose(again[column].to_numpy(), stored[column].to_numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"impression_id=\[123456789\] is invalid: impression_id accepts the id"):
        small.logged_probabilities([0, 123456789])


def test_sampled_outcomes_converge_to_the_probabilities(small: World) -> None:
    n = 200_000
    row = small.impressions.iloc[100]
    probs = small.probabilities([row["user_id"]], [row["post_id"]], [2], [row["timestamp"]]).iloc[0]
    draws = small.sample_outcomes(np.full(n, row["user_id"]), row["post_id"], 2, row["timestamp"], seed=7)
    for reaction in REACTIONS:
        p = probs[f"p_{reaction}"]
        assert abs(draws[reaction].mean() - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-4, reaction
    assert draws["dwell_seconds"].mean() == pytest.approx(probs["expected_dwell"], rel=0.05)


def test_position_lowers_every_probability(small: World) -> None:
    row = small.impressions.iloc[0]
    probs = small.probabilities(row["user_id"], row["post_id"], [1, 2, 5, 20], row["timestamp"])
    for reaction in REACTIONS:
        assert probs[f"p_{reaction}"].is_monotonic_decreasing


def test_truth_queries_reject_bad_input(small: World) -> None:
    row = small.impressions.iloc[0]
    with pytest.raises(ValueError, match="user_id=.* accepts integer ids from 0"):
        small.probabilities(10**6, row["post_id"], 1, row["timestamp"])
    with pytest.raises(ValueError, match="position=.* accepts integers >= 1"):
        small.probabilities(row["user_id"], row["post_id"], 0, row["timestamp"])
    with pytest.raises(ValueError, match="time=.* accepts times at or after the post's created_at"):
        small.probabilities(row["user_id"], row["post_id"], 1, "2025-01-01")
    with pytest.raises(ValueError, match="device=.* accepts one of ios, android, web, tablet"):
        small.probabilities(row["user_id"], row["post_id"], 1, row["timestamp"], device="fridge")


def test_rollout_rewards_a_better_policy(small: World) -> None:
    week = small.sessions[small.sessions["started_at"] >= pd.Timestamp("2026-01-26")]
    history = small.impressions[small.impressions["timestamp"] < pd.Timestamp("2026-01-26")]

    def oracle(candidates: pd.DataFrame) -> np.ndarray:
        probs = small.probabilities(candidates["user_id"], candidates["post_id"], 1, candidates["requested_at"],
                                    candidates["device"])
        return engagement_score(probs, prefix="p_").to_numpy()

    def random(candidates: pd.DataFrame) -> np.ndarray:
        return np.random.default_rng(0).random(len(candidates))

    served = {name: small.rollout(policy, week, seed=5, earlier_impressions=history)
              for name, policy in (("oracle", oracle), ("random", random), ("legacy", legacy_ranker(0)))}
    value = {name: engagement_score(r.probabilities, prefix="p_").mean() for name, r in served.items()}
    assert value["oracle"] > 1.3 * value["random"]
    assert value["oracle"] > 1.3 * value["legacy"]
    shown = served["oracle"].impressions
    assert not shown.duplicated(["user_id", "post_id"]).any()  # nobody sees a post twice
    assert not shown.merge(history, on=["user_id", "post_id"]).shape[0]  # nor one seen before the rollout
    with pytest.raises(ValueError, match="policy=.* accepts a callable returning one finite score"):
        small.rollout(lambda c: np.zeros(3), week.head(20))
    with pytest.raises(ValueError, match="sessions is missing columns .* accepts a DataFrame with columns"):
        small.rollout(random, week.drop(columns="device"))


def test_rollout_candidates_carry_each_posts_counts_so_far(small: World) -> None:
    start = pd.Timestamp("2026-01-26")
    week = small.sessions[small.sessions["started_at"] >= start]
    history = small.impressions[small.impressions["timestamp"] < start]
    seen: list[pd.DataFrame] = []

    def recording(candidates: pd.DataFrame) -> np.ndarray:
        seen.append(candidates)
        return np.zeros(len(candidates))

    served = small.rollout(recording, week, seed=0, earlier_impressions=history).impressions
    first = seen[0]  # the first batch knows the history only
    logged = history.drop_duplicates()  # a logging retry repeats a row; the world counted it once
    counts = logged.groupby("post_id").agg(impressions=("like", "size"), likes=("like", "sum"))
    expected = counts.reindex(first["post_id"]).fillna(0)
    assert (first["impressions_so_far"].to_numpy() == expected["impressions"].to_numpy()).all()
    assert (first["likes_so_far"].to_numpy() == expected["likes"].to_numpy()).all()
    # The last batch knows the history and every earlier batch of this rollout.
    last = seen[-1]
    started = served["session_id"].map(week.set_index("session_id")["started_at"])
    before = pd.concat([logged, served[started < last["requested_at"].min()]])  # the earlier batches' sessions
    counted = before.groupby("post_id").size().reindex(last["post_id"]).fillna(0).to_numpy()
    assert (last["impressions_so_far"].to_numpy() == counted).all()


def test_rollout_refuses_sessions_of_another_world(small: World) -> None:
    week = small.sessions.head(5)
    stranger = week.assign(user_id=[0, 1, 2, 3, small.n_people])  # a page, or nobody: not a person here
    with pytest.raises(ValueError, match=r"sessions.user_id=\[400\] is invalid: sessions.user_id accepts integer "
                                         r"ids from 0 to 399 \(sessions.user_id of a person\)"):
        small.rollout(legacy_ranker(0), stranger)
    unknown = week.assign(session_id=[0, 1, 2, 3, 10**7])
    with pytest.raises(ValueError, match=r"sessions.session_id=\[10000000\] is invalid: sessions.session_id "
                                         "accepts integer ids from 0 to"):
        small.rollout(legacy_ranker(0), unknown)


def test_drift_changes_the_world_after_its_start() -> None:
    drift = DriftConfig(start_day=14, trending_topic="climate", shifted_user_share=0.5, new_device_share=0.3)
    world = simulate(WorldConfig.at_scale("small", seed=1, drift=drift))
    start = pd.Timestamp("2026-01-19")
    tablet = world.sessions["device"] == "tablet"
    assert tablet.any() and (world.sessions.loc[tablet, "started_at"] >= start).all()
    climate = world.posts["topic"] == "climate"
    before = climate[world.posts["created_at"] < start].mean()
    after = climate[world.posts["created_at"] >= start].mean()
    assert after > 2 * before
    assert not np.allclose(world.truth.interests, world.truth.interests_after_drift)


def test_hubs_connect_to_a_thousand_accounts_and_others_keep_their_degree() -> None:
    """The hard case of serving: a few people with a thousand or more friends and follows."""
    # One week (the shortest log allowed): the graph is drawn before any day is simulated.
    config = WorldConfig.at_scale("small", seed=0, n_people=1500, hub_share=0.004, hub_degree=1200, n_days=7)
    edges = simulate(config).edges
    degree = edges.groupby("user_id").size()
    hubs = degree[degree >= 1000]
    assert 1 <= len(hubs) <= 15 and degree.drop(hubs.index).max() < 300
    hub_edges = edges[edges["user_id"].isin(hubs.index)]
    assert set(hub_edges["edge_type"]) == {"friend", "follow"}
    assert not edges.duplicated(["user_id", "target_id"]).any()
    assert WorldConfig.at_scale("default").hub_share == 0.0
    assert WorldConfig.at_scale("large").hub_share > 0


def test_save_load_round_trip_and_cache(tmp_path: Path, small: World, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = small.save(tmp_path / "w")
    loaded = World.load(folder)
    assert content_hash(loaded) == content_hash(small)
    assert loaded.config == small.config
    # The cache's logic, with the small world standing in for what the simulator would generate (the simulator's
    # own determinism is test_same_seed_same_world_and_other_seed_differs'): each load says whether it generated.
    generated: list[WorldConfig] = []

    def simulate_small(config: WorldConfig) -> World:
        generated.append(config)
        return small

    monkeypatch.setattr(storage, "simulate", simulate_small)
    cached = storage.load_world("small", seed=1, data_dir=tmp_path)  # nothing cached yet: generated
    assert generated == [WorldConfig.at_scale("small", seed=1)] and content_hash(cached) == content_hash(small)
    assert (tmp_path / "small-seed1" / "fingerprint.json").exists()
    assert content_hash(storage.load_world("small", seed=1, data_dir=tmp_path)) == content_hash(cached)
    assert len(generated) == 1  # read from the cache
    (tmp_path / "small-seed1" / "fingerprint.json").write_text('{"simulator": "stale"}')
    assert content_hash(storage.load_world("small", seed=1, data_dir=tmp_path)) == content_hash(cached)
    assert len(generated) == 2 and storage._is_current(tmp_path / "small-seed1")  # generated again, re-stamped
    # A table deleted or cut short: the world is generated again (with a warning naming the folder).
    (tmp_path / "small-seed1" / "impressions.parquet").unlink()
    (tmp_path / "small-seed1" / "posts.parquet").write_bytes(b"PAR1 cut short")
    with pytest.warns(UserWarning, match="small-seed1 could not be read"):
        regenerated = storage.load_world("small", seed=1, data_dir=tmp_path)
    assert len(generated) == 3 and content_hash(regenerated) == content_hash(cached)
    assert content_hash(World.load(tmp_path / "small-seed1")) == content_hash(cached)  # and written whole again
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]  # nothing left aside
    with pytest.raises(ValueError, match="seed='1' is invalid"):  # refused whether or not a cache exists
        storage.load_world("small", seed="1", data_dir=tmp_path)
    assert len(generated) == 3


def test_command_line_writes_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--scale", "small", "--seed", "3"]) == 0
    folder = tmp_path / "small-seed3"
    assert sorted(p.name for p in folder.glob("*.parquet")) == sorted(f"{t}.parquet" for t in World.TABLES)
    assert "wrote" in capsys.readouterr().out


def test_true_topics_name_each_posts_real_topic(small: World) -> None:
    posts = small.posts["post_id"]
    true = small.true_topics(posts)
    assert true.tolist() == [vocabulary.TOPICS[t] for t in small.truth.post_topic[posts.to_numpy()]]
    assert 0.8 < (small.posts["topic"].to_numpy() == true).mean() < 1.0  # the label is right most of the time
    assert small.true_topics([]).tolist() == []
    with pytest.raises(ValueError, match="post_id=.* accepts integer ids from 0"):
        small.true_topics([len(posts)])


def test_the_worlds_models_train_on_are_pinned(default: World) -> None:
    """The cached networks are keyed by ``fingerprint.PINNED``, not by the simulator's source: a change to the
    simulator that changes the default world, or chapter 7's drift world, must fail here until the digest is
    updated (which retrains every cached model); a mechanism the book's worlds leave off changes neither."""
    drift = simulate(WorldConfig.at_scale("default", seed=0, drift=DriftConfig(start_day=21)))
    for name, world in (("default-seed0", default), ("default-seed0-drift21", drift)):
        assert fingerprint.output_digest(world) == fingerprint.PINNED[name], (
            f"the simulator now generates another {name} world: set fingerprint.PINNED[{name!r}] to the new "
            "digest (every cached model then retrains) or leave the new mechanism off by default")


def test_the_digest_sees_one_changed_value(small: World) -> None:
    changed = copy.deepcopy(small)
    changed.truth.post_quality[7] += 1e-4
    assert fingerprint.output_digest(changed) != fingerprint.output_digest(small)


def test_harmful_posts_are_labelled_appealing_and_marked_in_text(tmp_path: Path) -> None:
    world = simulate(WorldConfig.at_scale("small", seed=3, harmful_share=0.05))
    harmful = world.truth.post_harmful
    assert harmful.dtype == bool and 0.035 < harmful.mean() < 0.065
    sensitive = np.isin(world.true_topics(world.posts["post_id"]), vocabulary.HARM_TOPICS)
    assert harmful[sensitive].mean() > 2 * harmful[~sensitive].mean()
    phrase = world.posts["text"].fillna("").str.startswith(vocabulary.MISLEADING_PHRASES).to_numpy()
    assert 0.5 < phrase[harmful].mean() < 0.7 and phrase[~harmful].mean() < 0.02
    # The same posts, the same moment: harm adds the appeal's log-odds to clicks and shares, none to likes.
    posts = np.flatnonzero(harmful)[:50]
    time = world.posts["created_at"].iloc[posts].to_numpy() + np.timedelta64(1, "h")
    before = world.probabilities(np.zeros(len(posts), dtype=int), posts, 1, time)
    world.truth.post_harmful = np.zeros_like(harmful)
    after = world.probabilities(np.zeros(len(posts), dtype=int), posts, 1, time)
    assert (before["p_click"] > after["p_click"]).all() and (before["p_share"] > after["p_share"]).all()
    assert np.allclose(before["p_like"], after["p_like"])
    world.truth.post_harmful = harmful
    loaded = World.load(world.save(tmp_path / "harm"))
    assert np.array_equal(loaded.truth.post_harmful, harmful) and loaded.truth.post_spam is None
    assert loaded.config.harmful_share == 0.05


def test_a_spam_burst_is_near_duplicates_from_the_most_followed_pages() -> None:
    config = WorldConfig.at_scale("small", seed=3, spam_posts=60, spam_accounts=2, spam_day=10, spam_hours=24.0)
    world, plain = simulate(config), simulate(WorldConfig.at_scale("small", seed=3))
    spam = world.truth.post_spam
    assert (spam >= 0).sum() == 60 and len(world.posts) == len(plain.posts) + 60
    assert world.truth.post_harmful is None and plain.truth.post_spam is None
    assert world.posts["created_at"].is_monotonic_increasing  # post ids stay in time order
    burst = world.posts[spam >= 0]
    hours = world.hours(burst["created_at"].to_numpy())
    assert hours.min() >= 240.0 and hours.max() < 264.0
    follows = plain.edges[plain.edges["edge_type"] == "follow"]["target_id"].value_counts()
    assert set(burst["author_id"]) == set(follows.index[:2])
    for _, texts in burst.groupby(spam[spam >= 0])["text"]:
        words = [text.split() for text in texts]
        assert len({len(w) for w in words}) == 1  # one template per account
        differing = [sum(a != b for a, b in zip(words[0], other, strict=True)) for other in words[1:]]
        assert max(differing) <= 4 and len(set(texts)) > 1  # near-duplicates, not copies
    # Everything else is the world without the burst: the same posts, by the same authors, with the same texts.
    kept = world.posts[spam < 0].reset_index(drop=True)
    assert kept[["author_id", "created_at", "text"]].equals(plain.posts[["author_id", "created_at", "text"]])
