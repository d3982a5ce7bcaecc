"""Fixtures shared by the unit tests."""

import pytest

from newsfeed.world import World, WorldConfig, simulate


@pytest.fixture(scope="session")
def small() -> World:
    """The small world with seed 1: generated once for every test module that needs a world to query."""
    return simulate(WorldConfig.at_scale("small", seed=1))


@pytest.fixture(scope="session")
def harmful() -> World:
    """The small world with chapter 11's mechanisms on: harmful posts, and a burst of near-duplicates."""
    return simulate(WorldConfig.at_scale("small", seed=4, harmful_share=0.06, spam_posts=80, spam_day=20))
