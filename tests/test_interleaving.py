"""Team-draft interleaving: the draft, the votes, the users a test needs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from newsfeed import experiments, interleaving


def candidates(sessions: int, per_session: int) -> pd.DataFrame:
    return pd.DataFrame({"session_id": np.repeat(np.arange(sessions), per_session),
                         "post_id": np.arange(sessions * per_session)})


def shown_order(scores: np.ndarray, frame: pd.DataFrame) -> dict[int, list[int]]:
    ranked = frame.assign(score=scores).sort_values(["session_id", "score"], ascending=[True, False])
    return {s: rows["post_id"].tolist() for s, rows in ranked.groupby("session_id")}


def test_the_draft_takes_each_rankers_best_in_turn_and_records_the_teams() -> None:
    frame = candidates(sessions=200, per_session=8)
    up = lambda rows: rows["post_id"].to_numpy(dtype=float)  # noqa: E731 -- prefers high ids
    down = lambda rows: -rows["post_id"].to_numpy(dtype=float)  # noqa: E731 -- prefers low ids
    record: list[pd.DataFrame] = []
    scores = interleaving.team_draft(up, down, top=4, seed=0, record=record)(frame)
    teams = pd.concat(record)
    assert len(teams) == 200 * 4 and not teams.duplicated(["session_id", "post_id"]).any()
    orders = shown_order(scores, frame)
    for session, rows in teams.groupby("session_id"):
        # Opposite rankers: each team's posts are its own ranker's best, two each, shown first.
        first, second = rows[rows["team"] == 0]["post_id"], rows[rows["team"] == 1]["post_id"]
        assert len(first) == len(second) == 2
        ids = np.arange(session * 8, session * 8 + 8)
        assert set(first) == set(ids[-2:]) and set(second) == set(ids[:2])
        assert set(orders[session][:4]) == set(rows["post_id"])
    # The coin is fair: the first ranker picks first in about half the sessions.
    leads = teams.groupby("session_id").head(1)["team"].mean()
    assert 0.4 < leads < 0.6
    # Identical rankers: the draft is that ranking, whoever picks.
    same = interleaving.team_draft(up, up, top=4, seed=1)(frame)
    assert all(order[:4] == sorted(order, reverse=True)[:4] for order in shown_order(same, frame).values())


def test_a_session_votes_for_the_team_with_more_clicks() -> None:
    impressions = pd.DataFrame({"session_id": [1, 1, 2, 2, 3, 3], "user_id": [7, 7, 7, 7, 8, 8],
                                "post_id": [10, 11, 20, 21, 30, 31], "click": [0, 1, 1, 1, 1, 0]})
    teams = pd.DataFrame({"session_id": [1, 1, 2, 2, 3, 3], "post_id": [10, 11, 20, 21, 30, 31],
                          "team": [0, 1, 0, 1, 0, 1]})
    preference = interleaving.preferences(impressions, teams)
    assert preference.to_dict() == {7: 0.5, 8: -1.0}  # user 7: a win and a tie; user 8: a loss
    with pytest.raises(ValueError, match="reward"):
        interleaving.preferences(impressions, teams, reward="purchase")


def test_users_needed_is_the_one_sample_power_formula() -> None:
    # Half of the two-sample formula per arm with the same spread: one group, no second variance.
    two_sample = experiments.sample_size_per_arm(1.0, 2.0, 0.25)
    assert interleaving.users_needed(0.25, 2.0) == pytest.approx(two_sample / 2, abs=1)
    assert interleaving.users_needed(-0.25, 2.0) == interleaving.users_needed(0.25, 2.0)
    with pytest.raises(ValueError, match="mean=0 is invalid"):
        interleaving.users_needed(0, 1.0)
    with pytest.raises(ValueError, match="power=1 is invalid"):
        interleaving.users_needed(0.1, 1.0, power=1)


def test_compare_finds_the_better_ranker_both_ways_and_reads_its_cache(small, tmp_path, monkeypatch) -> None:
    start = pd.Timestamp("2026-01-26")
    week = small.sessions[small.sessions["started_at"] >= start]
    history = small.impressions[small.impressions["timestamp"] < start]

    def oracle(rows: pd.DataFrame) -> np.ndarray:
        probs = small.probabilities(rows["user_id"], rows["post_id"], 1, rows["requested_at"], rows["device"])
        return (probs["p_click"] + 5 * probs["p_like"]).to_numpy()

    def recent(rows: pd.DataFrame) -> np.ndarray:
        return -rows["post_age_hours"].to_numpy()

    row = interleaving.compare(small, recent, oracle, week, history, folder=tmp_path, identity=b"recent, oracle")
    assert row["interleaving: preference for the second"] > 0 and row["A/B: lift in clicks"] > 0
    assert row["interleaving: users needed"] < row["A/B: users needed, clicks"]

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("compared again instead of reading the cache")

    monkeypatch.setattr(interleaving, "team_draft", fail)
    assert interleaving.compare(small, recent, oracle, week, history, folder=tmp_path,
                                identity=b"recent, oracle") == row
