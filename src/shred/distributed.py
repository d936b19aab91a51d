"""Sharing work among the processes of a ``torchrun`` launch, without a scheduler.

``torchrun --nproc_per_node=K [--nnodes=N --rdzv-endpoint=HOST:PORT] -m shred ...`` starts K x N
processes with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment. Every process
enumerates the same work items in the same order, independently of what is already done, and takes
those whose position modulo WORLD_SIZE is its RANK (:func:`share`); an item whose outputs exist
is skipped by its owner. So no process waits for another or talks to it while working, a process
that dies loses only its unfinished items, and running the same command again (with any number of
processes) computes only what is missing. The one collective is :func:`barrier`, at the end, so
that rank 0 reports on the finished whole.
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Sequence, TypeVar

T = TypeVar("T")

# The barrier waits for the slowest process: a long run's shares may finish hours apart.
BARRIER_TIMEOUT = timedelta(days=7)


def launch() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def share(items: Sequence[T], rank: int, world: int) -> list[T]:
    """This process's items: positions rank, rank + world, rank + 2 world, ..."""
    return list(items[rank::world])


def barrier() -> None:
    """Wait until every process of the launch gets here (gloo over torchrun's rendezvous, so it
    works on CPUs and across nodes alike); nothing when the process runs alone."""
    _, world, _ = launch()
    if world <= 1:
        return
    import atexit

    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
        # Kept for a later barrier of the same process (one command after another); closed at exit.
        atexit.register(dist.destroy_process_group)
    dist.barrier()
