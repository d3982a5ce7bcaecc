"""What users carry between sessions (world.dynamics): off unless asked, and each mechanism does what it says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from newsfeed.metrics import engagement_score
from newsfeed.world import Dynamics, World
from newsfeed.world.dynamics import Memory

START = pd.Timestamp("2026-01-19")


@pytest.fixture(scope="module")
def period(small: World) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The small world's last 9 days of sessions and the log before them."""
    return (small.sessions[small.sessions["started_at"] >= START],
            small.impressions[small.impressions["timestamp"] < START])


def engagement_oracle(world: World):
    def score(candidates: pd.DataFrame) -> np.ndarray:
        probs = world.probabilities(candidates["user_id"], candidates["post_id"], 1, candidates["requested_at"],
                                    candidates["device"])
        return engagement_score(probs, prefix="p_").to_numpy()
    return score


def test_dynamics_off_is_the_world_every_other_chapter_reads(small: World, period) -> None:
    sessions, history = period
    policy = engagement_oracle(small)
    plain = small.rollout(policy, sessions, seed=3, earlier_impressions=history)
    off = small.rollout(policy, sessions, seed=3, earlier_impressions=history, dynamics=Dynamics())
    pd.testing.assert_frame_equal(plain.impressions, off.impressions)
    pd.testing.assert_frame_equal(plain.probabilities, off.probabilities)
    assert off.visits is None and "regret" not in off.probabilities


def test_shared_posts_reach_friends_and_a_prompt_makes_more(small: World, period) -> None:
    sessions, history = period
    policy = engagement_oracle(small)
    travel = small.rollout(policy, sessions, seed=3, earlier_impressions=history,
                           dynamics=Dynamics(shares_travel=True))
    shown = travel.impressions
    shared = shown[shown["source"] == "shared"]
    assert len(shared) > 20
    # every post shown as shared was shared earlier, within the candidate window, by a friend of the viewer
    shares = shown[shown["share"] == 1][["user_id", "post_id", "timestamp"]].rename(
        columns={"user_id": "sharer", "timestamp": "shared_at"})
    friends = small.edges[small.edges["edge_type"] == "friend"].rename(columns={"target_id": "sharer"})
    paths = shared.merge(shares, on="post_id").merge(friends[["user_id", "sharer"]], on=["user_id", "sharer"])
    window = pd.Timedelta(hours=small.config.candidate_window_hours)
    paths = paths[(paths["shared_at"] < paths["timestamp"]) & (paths["shared_at"] >= paths["timestamp"] - window)]
    assert set(paths["impression_id"]) == set(shared["impression_id"])
    everyone = frozenset(range(small.n_people))
    prompted = small.rollout(policy, sessions, seed=3, earlier_impressions=history,
                             dynamics=Dynamics(shares_travel=True, treated=everyone, share_prompt=6.0))
    assert prompted.impressions["share"].sum() > 2 * shown["share"].sum()
    assert (prompted.impressions["source"] == "shared").sum() > 1.5 * len(shared)


def test_the_return_rate_follows_satisfaction(small: World, period) -> None:
    sessions, history = period
    good = engagement_oracle(small)

    def regretted(candidates: pd.DataFrame) -> np.ndarray:  # clickbait first: many regretted clicks and hides
        posts = candidates["post_id"].to_numpy()
        return small.truth.post_clickbait[posts] - small.truth.post_quality[posts]

    returning = Dynamics(return_rate=True, return_slope=2.0)
    served = {name: small.rollout(policy, sessions, seed=3, earlier_impressions=history, dynamics=returning)
              for name, policy in (("good", good), ("regretted", regretted))}
    for rollout in served.values():
        assert set(rollout.impressions["session_id"]) <= set(rollout.visits) <= set(sessions["session_id"])
        assert rollout.probabilities["regret"].le(rollout.impressions["click"]).all()  # a regret is a click
        bounced = rollout.impressions[rollout.probabilities["regret"] == 1]
        assert bounced["dwell_seconds"].le(6.0).all()
    assert len(served["regretted"].visits) < 0.9 * len(served["good"].visits)
    assert served["regretted"].probabilities["regret"].mean() > 2 * served["good"].probabilities["regret"].mean()


def test_novelty_halves_every_half_life_from_each_users_first_session(small: World) -> None:
    memory = Memory.start(small, Dynamics(treated=frozenset({1, 2}), novelty=0.8, novelty_half_life_days=2.0))
    users = np.array([1, 2, 3])
    first = memory.logit_shift(users, np.array([10.0, 30.0, 10.0]))
    np.testing.assert_allclose(first["click"], [0.8, 0.8, 0.0])
    later = memory.logit_shift(users, np.array([58.0, 30.0 + 96.0, 58.0]))
    np.testing.assert_allclose(later["like"], [0.4, 0.2, 0.0])
    assert "share" not in later  # no prompt: share odds unchanged


@pytest.mark.parametrize(("values", "field"), [
    ({"novelty": -1.0}, "novelty"),
    ({"return_rate": 1}, "return_rate"),
    ({"treated": {1, 2}}, "treated"),
    ({"treated": frozenset({-1})}, "treated"),
    ({"base_return": 1.0}, "base_return"),
    ({"share_prompt": 0.0}, "share_prompt"),
])
def test_bad_dynamics_name_the_field(values: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"{field}=.* accepts"):
        Dynamics(**values)


def test_a_rollout_refuses_dynamics_of_people_not_in_the_world(small: World, period) -> None:
    sessions, history = period
    with pytest.raises(ValueError, match="dynamics.treated=.* accepts ids of people of this world"):
        small.rollout(engagement_oracle(small), sessions.head(5), dynamics=Dynamics(treated=frozenset({10**6})))
    with pytest.raises(ValueError, match="dynamics=.* accepts None or a Dynamics"):
        small.rollout(engagement_oracle(small), sessions.head(5), dynamics={"shares_travel": True})
