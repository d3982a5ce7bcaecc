"""Files kept between runs, keyed by what made them: a hash of code (and data), written atomically.

The world, the dataset and the shipped models are each cached under such a key, so a change to the code or the
data that made them builds them anew rather than loading a stale copy; and each is written to a temporary file
that replaces the target in one step, so a reader never sees half a file and two writers never collide.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


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


def rows_digest(*frames: object) -> bytes:
    """The bytes of a hash of each table's rows (``None`` for a table not given): what identifies the data a model
    was fitted on, in a cache key.

    Only the index and the columns that are not floating point count: ids, labels, categories, times. The float
    columns (features, embeddings) are computed from those by code whose hash is part of the key too, and their
    last bits differ between processors, so counting them would make every other machine train anew.
    """
    import pandas as pd  # here: the world's workers import this module before pandas is needed

    digests = []
    for frame in frames:
        if frame is None:
            digests.append(b"-")
            continue
        exact = frame[[c for c in frame.columns if not pd.api.types.is_float_dtype(frame[c])]]
        digests.append(str(list(exact.columns)).encode())
        digests.append(pd.util.hash_pandas_object(exact, index=True).to_numpy().tobytes())
    return b"".join(digests)


def fitted_path(folder: str | Path, kind: str, identity: Iterable[bytes], sources: Iterable[Path],
                suffix: str = ".pt") -> Path:
    """Where a model of ``kind`` fitted on ``identity`` (its configuration and data, as bytes) by the code in
    ``sources`` is kept in ``folder`` (or what was measured of it, with another ``suffix``):
    ``<kind>-<identity hash>-<code hash><suffix>``. ``keep_fitted`` writes it."""
    fitted = hashlib.sha256(b"\0".join(identity)).hexdigest()[:16]
    return Path(folder) / f"{kind}-{fitted}-{code_hash(sources)}{suffix}"


def kept_json(folder: str | Path, kind: str, identity: Iterable[bytes], sources: Iterable[Path],
              run: Callable[[], Any]) -> Any:
    """What ``run()`` returns (anything JSON holds), kept as the ``fitted_path`` of ``kind`` in ``folder`` and
    read from there when the same code (``sources``) ran it on the same ``identity`` before: a study of many
    rollouts measured once, read by its chapter in a second, and measured anew when its code changes."""
    path = fitted_path(folder, kind, identity, sources, suffix=".json")
    if not path.exists():
        keep_fitted(path, json.dumps(run(), indent=1).encode())
    return json.loads(path.read_text())


def torch_bytes(obj: object) -> bytes:
    """``torch.save`` of ``obj`` (a network, a state), as the bytes a cache file holds."""
    import torch  # here: the world's workers import this module and need no torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def replace_older(path: Path, pattern: str) -> Path:
    """Keep ``path`` and remove the other files of ``pattern`` beside it (what older code or data made)."""
    for old in path.parent.glob(pattern):
        if old != path:
            old.unlink(missing_ok=True)
    return path


def keep_fitted(path: Path, data: bytes) -> Path:
    """Write a ``fitted_path`` file and remove the same model fitted by older code beside it."""
    return replace_older(write_atomic(path, data), f"{path.name.rsplit('-', 1)[0]}-*{path.suffix}")
