"""Near-duplicates: groups found by text similarity, checked against the world's copies, and kept apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from newsfeed import dedup
from newsfeed.world import World


def _posts(texts: list[str], hours: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"post_id": np.arange(len(texts)), "text": texts,
                         "created_at": pd.Timestamp("2026-01-05") + pd.to_timedelta(hours, unit="h")})


def test_copies_within_the_window_share_a_group_and_later_ones_do_not() -> None:
    copy = "free giveaway smartphone laptop cloud robot app update gadget chip"
    posts = _posts([copy, "election senate vote policy minister debate", copy.replace("robot", "today"),
                    copy, copy], [0.0, 1.0, 5.0, 30.0, 200.0])
    groups = dedup.near_duplicate_groups(posts)
    assert groups[0] == groups[2] == groups[3] == 0  # a word changed, and an exact copy a day later
    assert groups[1] == 1 and groups[4] == 4  # a different text; a copy eight days on, past the window
    # A copy 60 hours on, with no copy in between: past the two days' window, its own group.
    late = dedup.near_duplicate_groups(_posts([copy, "election senate vote policy", copy], [0.0, 1.0, 60.0]))
    assert late.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="^posts=.*ids in time order"):
        dedup.near_duplicate_groups(posts.iloc[::-1])
    with pytest.raises(ValueError, match="^threshold="):
        dedup.near_duplicate_groups(posts, threshold=1.5)


def test_a_copy_exactly_at_the_threshold_links_whatever_the_rounding() -> None:
    """One word of ten changed leaves 16 of the 19 words and word pairs shared: a similarity of exactly 16/19,
    which floating point lands a rounding step to either side of (below it, here; a processor's arithmetic may
    differ). At a threshold of 16/19 the pair links; a millionth above, it does not."""
    copy = "free giveaway smartphone laptop cloud robot app update gadget chip"
    posts = _posts([copy, copy.replace("robot", "today")], [0.0, 1.0])
    assert dedup.near_duplicate_groups(posts, 16 / 19).tolist() == [0, 0]
    assert dedup.near_duplicate_groups(posts, 16 / 19 + 1e-6).tolist() == [0, 1]


def test_each_post_links_to_its_closest_earlier_posts_only() -> None:
    first, second = "alpha beta gamma delta epsilon zeta", "one two three four five six"
    both = "alpha beta gamma delta epsilon zeta one two three four"  # closer to the first (0.76 against 0.49)
    posts = _posts([first, second, both], [0.0, 1.0, 2.0])
    assert dedup.near_duplicate_groups(posts, 0.45, neighbours=2).tolist() == [0, 0, 0]
    assert dedup.near_duplicate_groups(posts, 0.45, neighbours=1).tolist() == [0, 1, 0]


def test_the_groups_find_the_worlds_spam_burst(harmful: World) -> None:
    groups = dedup.near_duplicate_groups(harmful.posts)
    found = dedup.detection(groups, harmful)
    assert found["precision"] > 0.9 and found["recall"] > 0.9 and found["honest posts grouped"] < 0.03
    # Every post in its own group: nothing found, every honest post kept.
    alone = dedup.detection(np.arange(len(harmful.posts)), harmful)
    assert alone["pairs found"] == 0 and alone["recall"] == 0 and alone["honest posts grouped"] == 0
    with pytest.raises(ValueError, match="^groups="):
        dedup.detection(groups[:-1], harmful)


def test_deduplication_keeps_the_best_of_each_group_per_session() -> None:
    groups = np.array([0, 0, 2, 0])
    candidates = pd.DataFrame({"session_id": [1, 1, 1, 2, 2], "post_id": [0, 1, 2, 3, 2]})
    scores = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    deduplicated = dedup.deduplicated(lambda rows: scores[: len(rows)], groups)(candidates)
    assert deduplicated[1] == 3.0 and deduplicated[2] == 2.0  # the best of group 0, and group 2, in session 1
    assert deduplicated[0] < scores.min()  # the second of group 0 in session 1 goes below everything
    assert deduplicated[3] == 5.0 and deduplicated[4] == 4.0  # session 2: one post per group, unchanged


def test_first_screen_duplicates_count_repeats_of_a_template(harmful: World) -> None:
    copies = np.flatnonzero(harmful.truth.post_spam >= 0)
    template = harmful.truth.post_spam[copies]
    same = copies[template == template[0]][:3]
    honest = int(np.flatnonzero(harmful.truth.post_spam < 0)[0])
    shown = pd.DataFrame({"session_id": [1, 1, 1, 1, 2], "post_id": [*same, honest, same[0]],
                          "position": [1, 2, 11, 3, 1]})
    report = dedup.first_screen_duplicates(shown, harmful, screen=10)
    assert report == {"copies per 100 sessions": 150.0, "repeats per 100 sessions": 50.0}
