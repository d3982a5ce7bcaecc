"""Data-parallel training: chapter 4's network trained by several processes at once with ``torch.distributed``.

Every process holds a full copy of the network (same seed, so the same initial weights) and a different
slice of each batch; after each backward pass the processes average their gradients with an all-reduce
(``DistributedDataParallel`` over the gloo backend, which runs on CPUs), so every copy takes the same step. With
``world_size`` processes and a per-process batch of ``batch_size / world_size`` rows, one step sees the same
rows as a single process with ``batch_size``: the same training, up to the order of floating-point sums.

``fit_data_parallel`` prepares the inputs once (the encoding is fitted on the training rows, as ``MultiTask.fit``
does), starts the processes on 127.0.0.1, and returns a fitted ``MultiTask`` with rank 0's weights, plus what
the run measured: seconds per epoch, and the seconds and bytes the all-reduce cost per step.
"""

from __future__ import annotations

import copy
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from newsfeed.models import MultiTask, MultiTaskConfig
from newsfeed.models.multitask import TRAINING_DTYPE
from newsfeed.validation import require_int


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _worker(rank: int, world_size: int, port: int, folder: str) -> None:
    """One training process: its share of every batch, gradients averaged across processes each step."""
    torch.set_num_threads(1)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        setup = torch.load(Path(folder) / "setup.pt", weights_only=False)
        model: MultiTask = setup["model"]
        inputs, reactions, dwell = setup["inputs"], setup["reactions"], setup["dwell"]
        config: MultiTaskConfig = model.config
        torch.manual_seed(config.seed)  # the same initial weights in every process, and as MultiTask.fit's
        network, optimizer = model.new_network(inputs[0].shape[1])
        parallel = torch.nn.parallel.DistributedDataParallel(network)
        generator = torch.Generator().manual_seed(config.seed)  # the same batch order in every process
        epoch_seconds, losses = [], []
        for _ in range(config.max_epochs):
            parallel.train()
            start = time.perf_counter()
            order = torch.randperm(len(reactions), generator=generator)
            total, batches = 0.0, 0
            for lo in range(0, len(order), config.batch_size):
                batch = order[lo:lo + config.batch_size][rank::world_size]  # this process's share of the batch
                logits, dwell_pred = parallel(*(x[batch] for x in inputs))
                loss, _ = model._loss(logits, dwell_pred, reactions[batch], dwell[batch])
                optimizer.zero_grad()
                loss.backward()  # DistributedDataParallel averages the gradients here, across processes
                optimizer.step()
                total, batches = total + loss.item(), batches + 1
            epoch_seconds.append(time.perf_counter() - start)
            losses.append(total / batches)
        # What one all-reduce of the gradients costs: the same bytes, sent alone, timed.
        gradients = torch.zeros(sum(p.numel() for p in network.parameters()), dtype=TRAINING_DTYPE)
        dist.barrier()
        start = time.perf_counter()
        for _ in range(20):
            dist.all_reduce(gradients)
        all_reduce_seconds = (time.perf_counter() - start) / 20
        if rank == 0:
            torch.save({"state": network.state_dict(), "epoch_seconds": epoch_seconds, "losses": losses,
                        "all_reduce_seconds": all_reduce_seconds,
                        "gradient_bytes": gradients.numel() * gradients.element_size(), "steps_per_epoch": batches},
                       Path(folder) / "result.pt")
    finally:
        dist.destroy_process_group()


def fit_data_parallel(train: pd.DataFrame, config: MultiTaskConfig, world_size: int = 2) -> tuple[MultiTask, dict]:
    """Train chapter 4's network on ``train`` with ``world_size`` processes; the fitted model (rank 0's copy)
    and the run's measurements: ``epoch_seconds``, ``losses``, ``all_reduce_seconds`` and ``gradient_bytes``
    per step, ``steps_per_epoch``."""
    require_int("world_size", world_size, 1, 64)
    require_int("config.batch_size", config.batch_size, lo=world_size)
    model = MultiTask(copy.deepcopy(config), progress=None)
    torch.manual_seed(config.seed)
    inputs, reactions, dwell = model.prepare(train)
    with tempfile.TemporaryDirectory() as folder:
        torch.save({"model": model, "inputs": inputs, "reactions": reactions, "dwell": dwell},
                   Path(folder) / "setup.pt")
        # Spawned, not forked: a process that holds threads (a Jupyter kernel, a test runner's worker) can
        # deadlock a forked child on a lock one of its threads held (seen under pytest-xdist).
        mp.spawn(_worker, args=(world_size, _free_port(), folder), nprocs=world_size, join=True)
        result: dict[str, Any] = torch.load(Path(folder) / "result.pt", weights_only=False)
    model.network_, _ = model.new_network(inputs[0].shape[1])
    model.network_.load_state_dict(result.pop("state"))
    model.network_.float().eval()  # serve in float32, as MultiTask.fit leaves it
    model.learning_curve = [{"epoch": i + 1, "train_loss": loss} for i, loss in enumerate(result["losses"])]
    model.best_epoch = len(result["losses"])
    return model, result


def epoch_seconds_single(train: pd.DataFrame, config: MultiTaskConfig) -> tuple[MultiTask, float]:
    """The same network trained by one process, and its seconds per epoch: the baseline of the speed-up."""
    model = MultiTask(copy.deepcopy(config), progress=None)
    start = time.perf_counter()
    model.fit(train)
    return model, (time.perf_counter() - start) / config.max_epochs

