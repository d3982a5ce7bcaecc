"""The book's rankers as they ship: trained once on weeks 1–3 and cached beside the world, so later chapters
load what chapter 4 trained. The cache is keyed by the code and the data: a change to either retrains."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from newsfeed import features
from newsfeed.cache import code_hash, fitted_path, keep_fitted, replace_older, rows_digest, torch_bytes, write_atomic
from newsfeed.models.baselines import Chronological, Popularity, gradient_boosting, logistic_regression
from newsfeed.models.multitask import MultiTask, MultiTaskConfig, epoch_line
from newsfeed.models.ranker import Ranker
from newsfeed.world import storage as world_storage


def _source_files() -> list[Path]:
    """The code a trained network depends on: the worlds the simulator generates (their pinned digest,
    ``world.fingerprint``), the features and the models, every module."""
    folders = [Path(features.__file__).parent, Path(__file__).parent]
    return [*world_storage.output_files(), *(path for folder in folders for path in sorted(folder.glob("*.py")))]


def _cache_key(dataset: features.Dataset, config: object) -> str:
    rows = pd.util.hash_pandas_object(dataset.table[["impression_id", "like"]], index=False).to_numpy()
    return code_hash(_source_files(), rows.tobytes(), repr(config).encode())


def final_multitask(dataset: features.Dataset, folder: str | Path, epochs: int | None = None,
                    config: MultiTaskConfig | None = None) -> MultiTask:
    """The multi-task network as it ships: trained on weeks 1–3 (train and validation) for the number of epochs
    early stopping chose on week 3.

    Loaded from ``folder`` when the same code trained it on the same data (and, if ``epochs`` is given, for that
    many epochs); otherwise trained now and cached there. ``epochs`` skips the selection run when the caller
    already knows the epoch count (chapter 4 does); without it, a cached network of any epoch count is the one.
    """
    config = config or MultiTaskConfig()
    path = Path(folder) / f"multitask-{_cache_key(dataset, config)}.pt"
    if path.exists():
        cached: MultiTask = torch.load(path, weights_only=False)
        if epochs is None or cached.config.max_epochs == epochs:
            return cached
    if epochs is None:
        selection = MultiTask(copy.deepcopy(config), progress=None).fit(dataset.part("train"), dataset.part("valid"))
        epochs = selection.best_epoch
    final_config = copy.deepcopy(config)
    final_config.max_epochs = epochs
    network = MultiTask(final_config, progress=None).fit(dataset.part("train", "valid"))
    replace_older(write_atomic(path, torch_bytes(network)), "multitask-*.pt")
    return network


def fitted_multitask(config: MultiTaskConfig, train: pd.DataFrame, valid: pd.DataFrame | None, folder: str | Path,
                     progress: Callable[[str], None] | None = print) -> MultiTask:
    """``MultiTask(config).fit(train, valid)``, cached in ``folder``: loaded when this code fitted the same
    configuration on the same rows before, otherwise trained now (and saved there).

    Chapters 4 and 7 train their networks this way, up to a minute each on a laptop; a reader who changes a
    hyperparameter, the seed or the data trains anew. ``progress`` hears each epoch's line either way (a
    loaded network replays its learning curve), so the page reads the same whether it trained or loaded.
    ``fit_seconds`` is the training's own time, from the run that trained it. The file's name is a hash of
    the configuration and the rows (``cache.rows_digest``: their ids, labels and times), then of the code: a
    change to the code replaces the file.
    """
    identity = [repr(config).encode(), rows_digest(train, valid)]
    path = fitted_path(folder, "fitted", identity, _source_files())
    if path.exists():
        network: MultiTask = torch.load(path, weights_only=False)
        for record in network.learning_curve if progress is not None else []:
            progress(epoch_line(record))
    else:
        network = MultiTask(copy.deepcopy(config), progress=progress).fit(train, valid)
        keep_fitted(path, torch_bytes(network))
    network.progress = progress
    return network


def reseeded(network: MultiTask, dataset: features.Dataset, seed: int, folder: str | Path) -> MultiTask:
    """The shipped ``network``'s recipe with another training seed: the same configuration and epoch count,
    trained on weeks 1–3 (train and validation), cached like ``fitted_multitask`` (the default world's five
    seeds are committed). What changes from seed to seed is the yardstick of any difference between models;
    chapter 5 reads the heads' calibration across seeds."""
    if seed == network.config.seed:
        return network
    config = dataclasses.replace(network.config, seed=seed)
    return fitted_multitask(config, dataset.part("train", "valid"), None, folder, progress=None)


def final_baselines(dataset: features.Dataset, seed: int = 0, folder: str | Path | None = None) -> dict[str, Ranker]:
    """The baselines trained like the shipped model (on weeks 1–3), for a fair comparison on the test week.

    With ``folder``, loaded from there when the same code trained them on the same data, otherwise trained now
    and cached there (as ``final_multitask`` does)."""
    path = Path(folder) / f"baselines-{_cache_key(dataset, ('baselines', seed))}.pkl" if folder else None
    if path is not None and path.exists():
        cached: dict[str, Ranker] = pickle.loads(path.read_bytes())
        return cached
    rankers: list[Ranker] = [Chronological(), Popularity(), logistic_regression(seed), gradient_boosting(seed)]
    both = dataset.part("train", "valid")
    fitted = {ranker.name: ranker.fit(both) for ranker in rankers}
    if path is not None:
        replace_older(write_atomic(path, pickle.dumps(fitted, protocol=pickle.HIGHEST_PROTOCOL)), "baselines-*.pkl")
    return fitted
