"""Filter bubbles: a ranker that learns from its own feeds, diversity re-ranking, and the rounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from newsfeed import bubbles, metrics
from newsfeed.serving.rerank import RerankConfig
from newsfeed.world import World


def test_the_learned_rates_follow_engagement_and_the_prior_fills_the_unseen(small: World) -> None:
    log = small.impressions
    average = bubbles.TopicAffinity.fit(log, small.posts, small.n_people)
    zero = bubbles.TopicAffinity.fit(log, small.posts, small.n_people, unseen="zero")
    never = np.setdiff1d(np.arange(small.n_people), log["user_id"].unique())
    assert len(never)  # people never shown anything: the average user's rate, or nothing
    score = metrics.engagement_score(log).to_numpy()
    topic = average.topics.get_indexer(small.posts["topic"].to_numpy()[log["post_id"].to_numpy()])
    overall = np.bincount(topic, score, len(average.topics)) / np.bincount(topic, minlength=len(average.topics))
    assert np.allclose(average.rates[never], overall)  # the topic's rate over all users
    assert (zero.rates[never] == 0).all()
    liked = log[log["like"] == 1].iloc[0]
    topic = average.topics.get_loc(small.posts.loc[liked["post_id"], "topic"])
    one_like = log[log["impression_id"] == liked["impression_id"]]  # a log of one liked impression
    learned = bubbles.TopicAffinity.fit(one_like, small.posts, small.n_people, unseen="zero")
    assert learned.rates[liked["user_id"], topic] > 0 and learned.rates[liked["user_id"]].sum() == pytest.approx(
        learned.rates[liked["user_id"], topic])
    with pytest.raises(ValueError, match="^unseen="):
        bubbles.TopicAffinity.fit(log, small.posts, small.n_people, unseen="random")


def test_diversified_feeds_spread_over_topics(small: World) -> None:
    rows = small.impressions.head(300).assign(post_age_hours=1.0)
    rows = rows.assign(author_id=small.posts["author_id"].to_numpy()[rows["post_id"]])
    topics = small.posts["topic"].to_numpy()
    favourite = topics[rows["post_id"].iloc[0]]
    prefer = lambda candidates: (topics[candidates["post_id"]] == favourite) + 0.01  # noqa: E731
    config = RerankConfig(max_p_hide=1.0, author_penalty=0.0, topic_penalty=0.9)
    scores = bubbles.diversified(prefer, small.posts, config, limit=5)(rows)
    assert np.isfinite(scores).all()
    for _, session in rows.assign(score=scores).groupby("session_id"):
        top = session.nlargest(min(5, len(session)), "score")
        shown = topics[top["post_id"]]
        assert len(set(shown)) == min(len(top), len(set(topics[session["post_id"]])))


def test_interest_coverage_reads_the_true_interests(small: World) -> None:
    every = pd.DataFrame({"user_id": 0, "post_id": [int(np.flatnonzero(small.truth.post_topic == t)[0])
                                                    for t in range(small.truth.interests.shape[1])]})
    report = bubbles.interest_coverage(every, small)
    assert report["interest covered"] == pytest.approx(1.0)
    favourite = int(np.argmax(small.truth.interests[0]))
    one = every.iloc[[favourite]]
    assert bubbles.interest_coverage(one, small) == pytest.approx(
        {"interest covered": small.truth.interests[0, favourite], "on favourite topics": 1.0})


def test_the_rounds_learn_from_their_own_log_and_are_kept(small: World, tmp_path: Path) -> None:
    ways = {"unseen = 0": bubbles.WAYS["unseen = 0"]}
    rounds = bubbles.feedback_rounds(small, ways, rounds=2, start_day=24, days_per_round=2, folder=tmp_path)
    assert list(zip(rounds["way"], rounds["round"], strict=True)) == [("oracle", 1), ("oracle", 2),
                                                                      ("unseen = 0", 1), ("unseen = 0", 2)]
    oracle = rounds[rounds["way"] == "oracle"]
    learned = rounds[rounds["way"] != "oracle"]
    assert (oracle["engagement per session"].to_numpy() > learned["engagement per session"].to_numpy()).all()
    again = bubbles.feedback_rounds(small, ways, rounds=2, start_day=24, days_per_round=2, folder=tmp_path)
    pd.testing.assert_frame_equal(again, rounds)
    with pytest.raises(ValueError, match="^start_day="):
        bubbles.feedback_rounds(small, ways, rounds=3, start_day=24, days_per_round=2)
