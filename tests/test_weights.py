"""Weights chosen by long-term value: each set of weights served in a world where users may not come back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from newsfeed import weights
from newsfeed.metrics import ENGAGEMENT_WEIGHTS
from newsfeed.world import World


def test_clickbait_weights_bounce_more_and_the_study_reads_its_cache(small: World, tmp_path: Path) -> None:
    settings = {"chapter 2": dict(ENGAGEMENT_WEIGHTS), "clicks only": weights.SETTINGS["clicks only"]}
    frontier = weights.weights_frontier(small, settings, start_day=14, days=8, seeds=(0, 1), folder=tmp_path)
    assert list(frontier["setting"]) == ["chapter 2", "chapter 2", "clicks only", "clicks only"]
    assert list(frontier["seed"]) == [0, 1, 0, 1] and frontier.filter(like="w_").shape[1] == 5
    means = frontier.groupby("setting").mean(numeric_only=True)
    # Ranking by clicks alone earns less of chapter 2's score, and serves more regretted clicks.
    assert means.loc["clicks only", "first week engagement"] < means.loc["chapter 2", "first week engagement"]
    assert means.loc["clicks only", "first week bounces"] > means.loc["chapter 2", "first week bounces"]
    assert (frontier["last week visits"] > 0).all()
    again = weights.weights_frontier(small, settings, start_day=14, days=8, seeds=(0, 1), folder=tmp_path)
    pd.testing.assert_frame_equal(again, frontier)


@pytest.mark.parametrize(("settings", "argument"), [
    ({}, "settings"),
    ({"partial": {"click": 1.0}}, "weights"),
    ({"text": {**ENGAGEMENT_WEIGHTS, "hide": "a lot"}}, "weights"),
])
def test_the_grid_refuses_bad_weights(small: World, settings: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        weights.weights_frontier(small, settings, start_day=14, days=8, seeds=(0,))
