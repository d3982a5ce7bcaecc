"""Loading the book's world: read it from ``data/`` if it is there, otherwise generate it and cache it.

A fresh clone works offline with no extra step: the first notebook that asks for the world generates it
(about 10 s at the default scale) and writes it to ``data/<scale>-seed<seed>/``; every later load reads the
Parquet files. The cache carries a fingerprint of the simulator's source, so a changed simulator never serves
a stale world.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from newsfeed import vocabulary, world
from newsfeed.world import SCALES, World, WorldConfig, simulate

#: The repository's data folder (next to the package); override with the NEWSFEED_DATA environment variable.
DATA_DIR = Path(os.environ.get("NEWSFEED_DATA", Path(__file__).resolve().parent.parent / "data"))


def simulator_fingerprint() -> str:
    """A hash of the simulator's source: a cached world is valid only for the code that generated it."""
    digest = hashlib.sha256()
    for module in (world, vocabulary):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def world_folder(data_dir: str | Path, scale: str, seed: int) -> Path:
    """Where the world of ``scale`` and ``seed`` is stored below ``data_dir``."""
    return Path(data_dir) / f"{scale}-seed{seed}"


def save_world(generated: World, folder: str | Path) -> Path:
    """Write ``generated`` to ``folder`` atomically (a reader never sees half a world), with its fingerprint."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    generated.save(staging)
    (staging / "fingerprint.json").write_text(json.dumps({"simulator": simulator_fingerprint()}) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    try:
        staging.rename(folder)
    except OSError:  # another process won the race; its world is identical
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _is_current(folder: Path) -> bool:
    try:
        stamp = json.loads((folder / "fingerprint.json").read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("simulator") == simulator_fingerprint()


def load_world(scale: str = "default", seed: int = 0, data_dir: str | Path | None = None) -> World:
    """The world of ``scale`` (``small``, ``default``, ``large``) and ``seed``: cached, or generated now."""
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} is invalid: scale accepts one of {', '.join(SCALES)}")
    folder = world_folder(DATA_DIR if data_dir is None else data_dir, scale, seed)
    if _is_current(folder):
        return World.load(folder)
    generated = simulate(WorldConfig.at_scale(scale, seed=seed))
    save_world(generated, folder)
    return generated


def artifacts_folder(scale: str = "default", seed: int = 0, data_dir: str | Path | None = None) -> Path:
    """Where trained models for the world of ``scale`` and ``seed`` are cached (inside the world's folder, so a
    regenerated world never meets models trained on an older one)."""
    return world_folder(DATA_DIR if data_dir is None else data_dir, scale, seed) / "models"
