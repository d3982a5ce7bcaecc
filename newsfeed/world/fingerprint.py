"""What the book's worlds contain, pinned: the part of the simulator a trained model's cache key depends on.

A network trained on the default world depends on the simulator only through what it generated: the tables and
the ground truth. Keying the cached networks by the simulator's *source* retrained every one of them (about 40
minutes on two cores) for any change to the world's code, even a new mechanism that the book's worlds leave off
and that changes none of their rows. So the networks are keyed by this file instead, which pins a digest of
what the simulator generates for the worlds the chapters train on: the default world, and the same world with
chapter 7's drift. ``tests/test_world.py`` regenerates both and compares; a change to the simulator that changes
either fails there until ``PINNED`` is updated, and updating it (this file's bytes) retrains every cached model.
The world's own cache (``storage.simulator_fingerprint``) still follows every byte of the source.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from newsfeed.world.core import World

#: The digest of each pinned world as ``output_digest`` computes it from the current simulator.
PINNED: dict[str, str] = {
    "default-seed0": "114fa1772fffa2b6",
    "default-seed0-drift21": "a37af4286c8426fa",
}

#: Floats count to this many decimals: the last bits of a float differ between processors, the rounded value
#: does not (but for a value within 1e-16 of a rounding boundary, which a digest of a million values never meets).
_DECIMALS = 6


def _frame_digest(frame: pd.DataFrame) -> bytes:
    rounded = frame.copy()
    for column in rounded.columns:
        if pd.api.types.is_float_dtype(rounded[column]):
            rounded[column] = rounded[column].round(_DECIMALS) + 0.0  # -0.0 counts as 0.0
    return str(list(rounded.columns)).encode() + pd.util.hash_pandas_object(rounded, index=True).to_numpy().tobytes()


def output_digest(world: World) -> str:
    """16 hex digits of a hash of everything ``world`` holds: the observable tables and the ground truth (arrays
    and the logged impressions' true probabilities), floats rounded to ``_DECIMALS`` decimals. Not the config:
    every value of it shows in what it generated, and a new knob whose default changes nothing is no change."""
    digest = hashlib.sha256()
    for name in world.TABLES:
        digest.update(_frame_digest(getattr(world, name)))
    for name in world.truth._ARRAYS:
        values = np.asarray(getattr(world.truth, name))
        values = np.round(values, _DECIMALS) + 0.0 if np.issubdtype(values.dtype, np.floating) else values
        digest.update(f"{name}{values.shape}{values.dtype}".encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    digest.update(_frame_digest(world.truth.impressions))
    return digest.hexdigest()[:16]
