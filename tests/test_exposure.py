"""Creators' reach: exposure per creator, its inequality against true quality, and the boost that spreads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from newsfeed import experiments, exposure
from newsfeed.world import World, legacy_ranker


def test_creators_and_their_impressions_cover_every_post(small: World) -> None:
    table = exposure.creators(small)
    assert table["posts"].sum() == len(small.posts) and table.index.is_unique
    assert ((table["quality"] > 0) & (table["quality"] < 1)).all()
    counts = exposure.impressions_per_creator(small.impressions, small)
    assert counts.sum() == len(small.impressions) and counts.index.equals(table.index)
    one = small.posts.iloc[[0, 0, 0]]  # three impressions of one post: one creator holds everything
    report = exposure.reach(one, small)
    assert report["top 1% share"] == 1.0 and report["creators reached"] == pytest.approx(1 / len(table))
    assert report["gini"] > 0.99
    with pytest.raises(ValueError, match="impressions"):
        exposure.reach(small.impressions.head(0), small)


def test_the_boost_lifts_little_shown_creators_and_zero_changes_nothing(small: World) -> None:
    _, history, sessions = experiments.test_window(small, 20, 2)
    candidates = small.impressions[small.impressions["timestamp"] >= sessions["started_at"].min()].head(500)
    base = lambda rows: rows["post_id"].to_numpy(dtype=float)  # noqa: E731 -- any score will do
    unchanged = exposure.boost_under_exposed(base, small, history, 0.0)
    assert np.array_equal(unchanged(candidates), base(candidates))
    shown = exposure.impressions_per_creator(history, small)
    authors = small.posts["author_id"].to_numpy()[candidates["post_id"].to_numpy()]
    bonus = exposure.boost_under_exposed(lambda rows: np.zeros(len(rows)), small, history, 2.0)(candidates)
    assert 0 <= bonus.min() and bonus.max() <= 2.0
    # Less shown in the log, larger bonus: the bonus falls with each author's impressions.
    order = np.argsort(shown.reindex(authors).to_numpy(), kind="stable")
    assert np.all(np.diff(bonus[order]) <= 1e-12)
    with pytest.raises(ValueError, match="weight"):
        exposure.boost_under_exposed(base, small, history, -1.0)


def test_the_frontier_spreads_reach_and_reads_its_cache(small: World, tmp_path: Path) -> None:
    _, history, sessions = experiments.test_window(small, 20, 2)
    frontier = exposure.reach_frontier(small, legacy_ranker(0), (0.0, 50.0), sessions, history, 0, tmp_path)
    assert list(frontier["weight"]) == [0.0, 50.0]
    # A bonus that outweighs the ranker's score spreads impressions over more creators, more equally.
    assert frontier["gini"].iloc[1] < frontier["gini"].iloc[0]
    assert frontier["creators reached"].iloc[1] >= frontier["creators reached"].iloc[0]
    again = exposure.reach_frontier(small, None, (0.0, 50.0), sessions, history, 0, tmp_path)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(again, frontier)  # read back: the policy is not even called
    with pytest.raises(ValueError, match="weights"):
        exposure.reach_frontier(small, legacy_ranker(0), (), sessions, history)


def test_topic_diversity_counts_each_users_topics(small: World) -> None:
    topics = small.truth.post_topic
    first, second = np.flatnonzero(topics == topics[0])[:2], np.flatnonzero(topics != topics[0])[:1]
    # User 1 sees one topic twice; user 2 two topics once each.
    rows = pd.DataFrame({"user_id": [1, 1, 2, 2], "post_id": [first[0], first[1], first[0], second[0]],
                         "like": [1, 0, 1, 1]})
    report = exposure.topic_diversity(rows, small)
    assert report["topic entropy (bits)"] == pytest.approx(0.5) and report["topics per user"] == 1.5
    liked = exposure.topic_diversity(rows, small, reaction="like")
    assert liked["topic entropy (bits)"] == pytest.approx(0.5) and liked["users"] == 2
    whole = exposure.topic_diversity(small.impressions, small)
    assert 0 < whole["topic entropy (bits)"] <= np.log2(topics.max() + 1)
    with pytest.raises(ValueError, match="impressions"):
        exposure.topic_diversity(rows.assign(like=0), small, reaction="like")
