"""DistributedDataParallel setup: the process group torchrun describes, and each rank's device."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..devices import pick_device


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_process_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_process_group:
            dist.destroy_process_group()


def init_distributed() -> DistributedContext:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK): NCCL with CUDA, else gloo."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistributedContext(dist.get_rank(), world_size, local_rank, owns_process_group=True)


def rank_zero_choice(value):
    """Rank 0's `value` on every rank, where each process decides something by itself that all must share (a timed
    choice such as `--precision auto`); `value` itself outside a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    chosen = [value]
    dist.broadcast_object_list(chosen, src=0)
    return chosen[0]


def training_device(requested: str | torch.device | None, context: DistributedContext) -> torch.device:
    if requested is not None:
        return pick_device(str(requested))
    if torch.cuda.is_available():
        return torch.device("cuda", context.local_rank)
    return pick_device("auto") if context.world_size == 1 else torch.device("cpu")  # gloo cannot reduce MPS tensors
