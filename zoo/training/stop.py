"""Stopping a run cleanly: the first Ctrl-C (or SIGTERM) ends it after the current step, a second one at once."""

from __future__ import annotations

import signal
import threading

import torch
import torch.distributed as dist

# Under DDP, ranks agree on a Ctrl-C this often (a collective), so they all stop after the same step.
STOP_SYNC_EVERY = 10


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a request honoured between steps; a second SIGINT interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def agreed(self, step: int, world_size: int, device: torch.device) -> bool:
        """Whether to stop after `step`: under DDP every STOP_SYNC_EVERY steps, when any rank was asked."""
        if world_size == 1:
            return self.requested
        if step % STOP_SYNC_EVERY:
            return False
        flag = torch.tensor(float(self.requested), device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
