"""Interference on the friend graph (chapter 10): when shares travel, treating one user changes what their
friends see, and an A/B test randomized by user measures something other than the launch.

The launch is a product change, not a ranker: a one-tap share button that multiplies the odds of sharing
(``SHARE_PROMPT``). What it is for is everyone's feed, so the metric is **feed engagement**: the engagement
score of what each user's feed showed them, without their own shares (which the button raises directly). A
prompted user's shares reach their friends (``world.Dynamics(shares_travel=True)``), prompted or not.

The **global effect** is everyone prompted against no one prompted: two rollouts of the same sessions, which
only a simulator can run. An experiment estimates it from one rollout in which a random half is prompted: by
user (**Bernoulli**), or by cluster of the friend graph (**graph-cluster randomization**, clusters from
Louvain community detection, ``networkx``), so that most of a prompted user's friends are prompted too.
``interference_study`` repeats each design many times and compares its estimates with the truth: the bias is
what the design gets wrong on average, the spread what one experiment risks.

Each estimate is the difference in mean feed engagement per user between the arms over the users who
visited, adjusted by each user's feed engagement before the test (CUPED, chapter 5's exercise), which leaves
the mean and narrows the spread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from newsfeed import experiments, policies
from newsfeed.cache import kept_json
from newsfeed.metrics import ENGAGEMENT_WEIGHTS, engagement_score
from newsfeed.validation import require_float, require_int
from newsfeed.world import Dynamics, World, fingerprint

#: How much the share button multiplies the odds that a prompted user shares a post they read.
SHARE_PROMPT = 6.0
#: Feed engagement: the engagement score without the reader's own shares.
FEED_WEIGHTS = {reaction: weight for reaction, weight in ENGAGEMENT_WEIGHTS.items() if reaction != "share"}


def friend_graph(world: World) -> nx.Graph:
    """The people and their friendships, as an undirected graph."""
    edges = world.edges[(world.edges["edge_type"] == "friend") & (world.edges["user_id"] < world.edges["target_id"])]
    graph = nx.Graph()
    graph.add_nodes_from(range(world.n_people))
    graph.add_edges_from(zip(edges["user_id"].tolist(), edges["target_id"].tolist(), strict=True))
    return graph


def louvain_clusters(graph: nx.Graph, resolution: float = 1.0, seed: int = 0) -> np.ndarray:
    """Each person's cluster (an index): the Louvain communities of ``graph``, which maximize
    modularity (friendships inside communities against chance); a higher ``resolution`` makes
    more, smaller ones."""
    communities = nx.community.louvain_communities(graph, resolution=resolution, seed=seed)
    labels = np.empty(graph.number_of_nodes(), dtype=np.int64)
    for index, members in enumerate(communities):
        labels[list(members)] = index
    return labels


def edges_cut(graph: nx.Graph, clusters: np.ndarray) -> float:
    """The share of friendships whose two people are in different clusters (a random half of
    the clusters treated puts half of these across the arms)."""
    ends = np.asarray(graph.edges(), dtype=np.int64)
    return float(np.mean(clusters[ends[:, 0]] != clusters[ends[:, 1]]))


def feed_engagement(impressions: pd.DataFrame, n_people: int) -> np.ndarray:
    """Each person's feed engagement (``FEED_WEIGHTS``) over ``impressions``, 0 for who saw nothing."""
    return engagement_score(impressions, FEED_WEIGHTS).groupby(impressions["user_id"]).sum().reindex(
        range(n_people), fill_value=0.0).to_numpy()


def cuped_difference(outcome: np.ndarray, before: np.ndarray, treated: np.ndarray, visited: np.ndarray) -> float:
    """Treated minus control mean of the ``visited`` users' outcome, adjusted by ``before`` (CUPED)."""
    adjusted = experiments.cuped(outcome[visited], before[visited])
    arm = treated[visited]
    return float(adjusted[arm].mean() - adjusted[~arm].mean())


def interference_study(world: World, start_day: int, days: int, designs: dict[str, np.ndarray], repeats: int,
                       folder: str | Path, prompt: float = SHARE_PROMPT, seed: int = 0,
                       progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The share button tested over ``days`` from ``start_day`` with shares travelling: rows ``truth`` (the
    global effect, from two rollouts with each of three seeds) and one per (design, repeat), where a design is
    an array of each person's randomization unit (``arange`` for Bernoulli, cluster labels) and a random half
    of the units is prompted. Columns: ``estimate`` (CUPED) and ``plain`` (difference in means). Read from
    ``folder`` when this code ran the same study on the same world before."""
    window = experiments.test_window(world, start_day, days)
    require_int("repeats", repeats, 1, 10_000)
    require_float("prompt", prompt, 0.01, 100.0)
    identity = [fingerprint.output_digest(world).encode(), repr((start_day, days, repeats, prompt, seed)).encode(),
                *(name.encode() + np.ascontiguousarray(units).tobytes() for name, units in sorted(designs.items()))]
    return pd.DataFrame(kept_json(folder, "interference", identity, experiments.study_sources(__file__),
                                  lambda: _run(world, window, designs, repeats, prompt, seed, progress)))


def _run(world: World, window: tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame], designs: dict[str, np.ndarray],
         repeats: int, prompt: float, seed: int, progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    _, earlier, sessions = window
    before = feed_engagement(earlier, world.n_people)
    visited = np.isin(np.arange(world.n_people), sessions["user_id"].to_numpy())
    ranker = policies.oracle_policy(world, lambda p: engagement_score(p, prefix="p_"))

    def served(prompted: np.ndarray, rollout_seed: int) -> np.ndarray:
        dynamics = Dynamics(shares_travel=True, share_prompt=prompt,
                            treated=frozenset(np.flatnonzero(prompted).tolist()))
        rollout = world.rollout(ranker, sessions, seed=rollout_seed, earlier_impressions=earlier, dynamics=dynamics)
        return feed_engagement(rollout.impressions, world.n_people)

    everyone, no_one = np.ones(world.n_people, dtype=bool), np.zeros(world.n_people, dtype=bool)
    rows = []
    for truth_seed in range(3):
        effect = served(everyone, truth_seed)[visited].mean() - served(no_one, truth_seed)[visited].mean()
        rows.append({"design": "truth", "repeat": truth_seed, "estimate": float(effect), "plain": float(effect)})
    rng = np.random.default_rng(seed)
    for name, units in designs.items():
        for repeat in range(repeats):
            if progress is not None:
                progress(f"{name} {repeat}")
            treated = (rng.random(int(units.max()) + 1) < 0.5)[units]
            outcome = served(treated, repeat)
            plain = outcome[visited & treated].mean() - outcome[visited & ~treated].mean()
            rows.append({"design": name, "repeat": repeat, "estimate": cuped_difference(
                outcome, before, treated, visited), "plain": float(plain)})
    return rows
