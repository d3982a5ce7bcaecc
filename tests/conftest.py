"""Fixtures shared by the unit tests."""

import pytest

from newsfeed.world import World, WorldConfig, simulate


@pytest.fixture(scope="session")
def small() -> World:
    """The small world with seed 1: generated once for every test module that needs a world to query."""
    return simulate(WorldConfig.at_scale("small", seed=1))
