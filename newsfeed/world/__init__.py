"""A simulated social network whose news feed the book learns to rank.

The world is a generative model with *ground truth*: every person has latent topic interests, every post a
latent quality and clickbait-ness, every friendship a latent closeness, and every feed position an
examination probability. From these the world knows the true probability of each reaction for any
(user, post, position, time). The observable tables (``users``, ``posts``, ``edges``, ``sessions``,
``impressions``) are what a real company would log; the latent state lives apart in ``World.truth`` so that
no chapter can leak it into features by accident.

Impressions are logged by a legacy ranker (fresh, popular, friends first, plus noise), so the logs carry its
bias, and they are dirty the way real logs are (see ``data/README.md`` for the datasheet).

The package, one module per job:

- ``config``: ``WorldConfig`` and ``DriftConfig`` (every knob, validated; harmful posts and a spam burst are
  knobs that only chapter 11 turns on) and the named ``SCALES``;
- ``outcomes``: the ground truth and the outcome model (true probabilities, sampled reactions);
- ``rollout``: policies meet sessions (candidates, choose, show, update counters), and the legacy ranker;
- ``dynamics``: what users carry between sessions, off unless a rollout asks (shares that travel, a
  product change that is new for a while, a return rate);
- ``core``: the ``World`` (tables, truth, and the questions it answers);
- ``graph``: friendships, follows of pages, the large world's hubs, and when each edge was made;
- ``generate``: ``simulate``, which generates people, pages, the graph (with ``graph``), posts, texts and sessions;
- ``storage``: ``load_world`` (the cache in ``data/``), ``save_world`` and the command line;
- ``fingerprint``: the pinned digest of the worlds the cached models train on (their cache key, not the source).

Use::

    from newsfeed.world import load_world
    world = load_world("default", seed=0)
    world.impressions.head()
    world.probabilities(user_id=[3], post_id=[10], position=[1], time=["2026-01-20 18:00"])
"""

from newsfeed.world.config import DEVICES, REACTIONS, SCALES, DriftConfig, WorldConfig
from newsfeed.world.core import World
from newsfeed.world.dynamics import Dynamics
from newsfeed.world.generate import simulate
from newsfeed.world.outcomes import GroundTruth
from newsfeed.world.rollout import Policy, Rollout, legacy_ranker
from newsfeed.world.storage import (
    DATA_DIR,
    artifacts_folder,
    load_world,
    main,
    save_world,
    simulator_fingerprint,
    world_folder,
)

__all__ = ["DATA_DIR", "DEVICES", "REACTIONS", "SCALES", "DriftConfig", "Dynamics", "GroundTruth", "Policy",
           "Rollout", "World", "WorldConfig", "artifacts_folder", "legacy_ranker", "load_world", "main", "save_world",
           "simulate", "simulator_fingerprint", "world_folder"]
