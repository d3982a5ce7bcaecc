"""Files kept between runs, keyed by what made them: a hash of code (and data), written atomically.

The world, the dataset and the shipped models are each cached under such a key, so a change to the code or the
data that made them builds them anew rather than loading a stale copy; and each is written to a temporary file
that replaces the target in one step, so a reader never sees half a file and two writers never collide.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def code_hash(sources: Iterable[Path], *parts: bytes) -> str:
    """16 hex digits of the SHA-256 of the ``sources`` files' bytes, in order, then of ``parts``."""
    digest = hashlib.sha256()
    for path in sources:
        digest.update(Path(path).read_bytes())
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:16]


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file of its folder and one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    os.replace(staging, path)
    return path
