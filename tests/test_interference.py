"""Interference on the friend graph: clusters, edges cut, CUPED, and the study against its truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from newsfeed import experiments, interference
from newsfeed.world import World


def test_clusters_cover_everyone_and_cut_fewer_friendships_than_chance(small: World) -> None:
    graph = interference.friend_graph(small)
    assert graph.number_of_nodes() == small.n_people
    assert graph.number_of_edges() == (small.edges["edge_type"] == "friend").sum() // 2
    clusters = interference.louvain_clusters(graph, seed=0)
    assert clusters.shape == (small.n_people,) and clusters.min() == 0
    assert interference.edges_cut(graph, np.zeros(small.n_people, dtype=int)) == 0.0
    assert interference.edges_cut(graph, np.arange(small.n_people)) == 1.0
    shuffled = np.random.default_rng(0).permutation(clusters)  # same sizes, members at random
    assert interference.edges_cut(graph, clusters) < 0.8 * interference.edges_cut(graph, shuffled)


def test_cuped_keeps_the_difference_and_narrows_it() -> None:
    rng = np.random.default_rng(0)
    before = rng.gamma(1.0, 50.0, 4000)
    treated = rng.random(4000) < 0.5
    outcome = before + rng.normal(0, 10, 4000) + 3.0 * treated
    visited = np.ones(4000, dtype=bool)
    assert interference.cuped_difference(outcome, before, treated, visited) == pytest.approx(3.0, abs=0.8)
    adjusted = experiments.cuped(outcome, before)
    assert adjusted.var() < 0.2 * outcome.var() and adjusted.mean() == pytest.approx(outcome.mean())
    np.testing.assert_allclose(experiments.cuped(outcome, np.ones(4000)), outcome)  # nothing to explain
    with pytest.raises(ValueError, match="covariate=.* accepts one value per outcome"):
        experiments.cuped(outcome, before[:10])


def test_the_study_measures_each_design_and_reads_its_cache(small: World, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    designs = {"bernoulli": np.arange(small.n_people)}
    study = interference.interference_study(small, 20, 3, designs, 2, tmp_path)
    assert study.groupby("design").size().to_dict() == {"bernoulli": 2, "truth": 3}
    assert np.isfinite(study[["estimate", "plain"]].to_numpy()).all()
    assert (study.loc[study["design"] == "truth", "estimate"] > 0).all()  # more shares reach more friends

    def fail(*args: object) -> None:
        raise AssertionError("the study ran again instead of reading its cache")

    monkeypatch.setattr(interference, "_run", fail)
    assert study.equals(interference.interference_study(small, 20, 3, designs, 2, tmp_path))
    with pytest.raises(ValueError, match="days=.* accepts"):
        interference.interference_study(small, 20, 30, designs, 2, tmp_path)
