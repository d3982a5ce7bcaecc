"""Storing the book's world: read it from ``data/`` if it is there, otherwise generate it and cache it.

A fresh clone works offline with no extra step: the first notebook that asks for the world generates it
(about 10 s at the default scale) and writes it to ``data/<scale>-seed<seed>/``; every later load reads the
Parquet files. The cache carries a fingerprint of the simulator's source (every module of this package, and
the vocabulary), so a changed simulator never serves a stale world.

``python -m newsfeed.world --out data`` writes the default world from the command line (``main``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from newsfeed import vocabulary
from newsfeed.cache import code_hash
from newsfeed.validation import require, require_int
from newsfeed.world.config import SCALES, WorldConfig
from newsfeed.world.core import World
from newsfeed.world.generate import simulate

#: The repository's data folder (next to the package); override with the NEWSFEED_DATA environment variable.
DATA_DIR = Path(os.environ.get("NEWSFEED_DATA", Path(__file__).resolve().parents[2] / "data"))


def source_files() -> list[Path]:
    """The simulator's source: every module of the ``newsfeed.world`` package, and the vocabulary."""
    return [*sorted(Path(__file__).parent.glob("*.py")), Path(vocabulary.__file__)]


def output_files() -> list[Path]:
    """What a model trained on a world depends on of the simulator: the pinned digest of the worlds the chapters
    train on (``fingerprint.PINNED``), not the source, so a mechanism the book's worlds leave off retrains nothing."""
    return [Path(__file__).with_name("fingerprint.py")]


def simulator_fingerprint() -> str:
    """A hash of the simulator's source: a cached world is valid only for the code that generated it."""
    return code_hash(source_files())


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
    # Move an old copy aside (one rename) rather than delete it first, so a world is on disk at all but an
    # instant; remove it once the new one is in place.
    old: Path | None = folder.with_name(f".{folder.name}-old-{staging.name}")
    try:
        folder.rename(old)
    except OSError:  # nothing to move aside (or another process just did)
        old = None
    try:
        staging.rename(folder)
    except OSError:  # another process won the race; its world is identical
        shutil.rmtree(staging, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _is_current(folder: Path) -> bool:
    try:
        stamp = json.loads((folder / "fingerprint.json").read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("simulator") == simulator_fingerprint()


def load_world(scale: str = "default", seed: int = 0, data_dir: str | Path | None = None) -> World:
    """The world of ``scale`` (``small``, ``default``, ``large``) and ``seed``: cached, or generated now."""
    require("scale", scale, scale in SCALES, f"one of {', '.join(SCALES)}")
    require_int("seed", seed, lo=0)
    folder = world_folder(DATA_DIR if data_dir is None else data_dir, scale, seed)
    if _is_current(folder):
        try:
            return World.load(folder)
        except (OSError, ValueError) as error:  # a table deleted or cut short (pyarrow's errors are ValueErrors)
            warnings.warn(f"the world cached in {folder} could not be read ({type(error).__name__}: "
                          f"{str(error)[:120]}); generating it again", stacklevel=2)
    generated = simulate(WorldConfig.at_scale(scale, seed=seed))
    save_world(generated, folder)
    return generated


def artifacts_folder(scale: str = "default", seed: int = 0, data_dir: str | Path | None = None) -> Path:
    """Where trained models for the world of ``scale`` and ``seed`` are cached: ``data/models/<scale>-seed<seed>/``.

    The default world's are committed with the book, so a fresh clone loads the network and baselines chapter 4
    trains instead of training them again before the tests (``make execute`` writes new ones after a change).
    Each file's name is a hash of the code and the data that trained it (``newsfeed.models.shipped``), so a changed
    world, feature or model trains anew rather than loading a stale model."""
    return Path(DATA_DIR if data_dir is None else data_dir) / "models" / f"{scale}-seed{seed}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m newsfeed.world``: generate a world and write its tables into OUT/<scale>-seed<seed>/."""
    parser = argparse.ArgumentParser(prog="python -m newsfeed.world", description="Generate the simulated world "
                                     "and write its tables as Parquet into OUT/<scale>-seed<seed>/.")
    parser.add_argument("--out", type=Path, default=Path("data"), help="folder to write into (default: data)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        config = WorldConfig.at_scale(args.scale, seed=args.seed)
    except ValueError as error:
        parser.error(str(error))
    world = simulate(config, progress=True)
    folder = save_world(world, world_folder(args.out, args.scale, args.seed))
    sizes = ", ".join(f"{name} {len(getattr(world, name)):,}" for name in World.TABLES)
    print(f"wrote {folder}: {sizes}")
    return 0
