"""Training on several processes (torchrun, DDP): which process this is, its share of a batch,
and the few collectives the loop needs besides DDP's gradient averaging.

A run under ``torchrun --nproc-per-node N`` (``WORLD_SIZE`` N in the environment) is the run
of one process with the same global batch, split: every rank computes the same seeded batch
order (``batching.epoch_batches``), takes its contiguous share of each batch (``share``), and
DDP averages the gradients. A rank scales its loss by its share of the step's loss weight
times the world size, so the average is the mean over the global batch even when the shares
are uneven (a batch of 5 over 2 ranks, or a decoder's trained tokens). The loss weights are
known from the examples before scoring, so this needs no collective of its own.

What else every rank must agree on goes through ``Ranks``: the stop decision (an all-reduce
of the stop flags before every step and validation round, so a signal seen by one rank stops
all of them at the same point and none is left waiting in a collective), the train loss, the
validation sums and the RNG states kept in a checkpoint. The process group has a timeout
(``COLLECTIVE_TIMEOUT``), so a rank whose peer died without a word fails instead of waiting
forever; torchrun stops the other ranks when one fails.

Only rank 0 writes events, checkpoints and the model (``is_main``); the other ranks compute
the same state and drop their writes.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from accelerate import Accelerator

T = TypeVar("T")

# Longer than any wait that is not a fault: rank 0 writing a checkpoint or a best model while
# the others wait at the next step's stop check.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


def world_size() -> int:
    """Processes in this run (torchrun's ``WORLD_SIZE``; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (torchrun's ``RANK``; 0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def launched_by_torchrun() -> bool:
    """True in a process torchrun (torch.distributed.run) started, even with one process."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def is_main() -> bool:
    return rank() == 0


def share(items: list[T], at: int, world: int) -> list[T]:
    """The ``at``-th of ``world`` contiguous, nearly equal parts of ``items`` (the first
    ``len % world`` parts hold one more); a part may be empty when there are fewer items."""
    base, extra = divmod(len(items), world)
    start = at * base + min(at, extra)
    return items[start : start + base + (1 if at < extra else 0)]


def split_note(batch_size: int, world: int) -> str:
    """How each global batch is split over the processes, for the run's Settings message."""
    if world == 1:
        return ""
    low, high = batch_size // world, -(-batch_size // world)
    each = f"{low}" if low == high else f"{low} or {high}"
    return f" split over {world} processes ({each} each, gradients averaged by DDP)"


def process_group_kwargs() -> list[Any]:
    """Accelerator ``kwargs_handlers``: the process group's timeout (none without torchrun)."""
    if world_size() == 1:
        return []
    from accelerate.utils import InitProcessGroupKwargs

    return [InitProcessGroupKwargs(timeout=COLLECTIVE_TIMEOUT)]


class Ranks:
    """The collectives of a run; with one process each is the identity and costs nothing.

    Every rank must make the same calls in the same order (they are collectives).
    """

    def __init__(self, accelerator: Accelerator) -> None:
        self.world = accelerator.num_processes
        self.rank = accelerator.process_index
        self.device = accelerator.device

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any."""
        if self.world == 1:
            return flag
        import torch
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def sum(self, value: float) -> float:
        """The sum over ranks of ``value``, in float64 (a train loss's weighted sum)."""
        if self.world == 1:
            return value
        import torch
        import torch.distributed as dist

        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return float(total.item())

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        found: list[Any] = [None] * self.world
        dist.all_gather_object(found, value)
        return found

    def own_rng_state(self, saved: dict[str, Any]) -> dict[str, Any]:
        """This rank's generator states in a checkpoint's (rank 0's when it was written by
        another number of processes, or by one)."""
        ranks = saved.get("ranks")
        return ranks[self.rank] if ranks and len(ranks) == self.world else saved

    def agreed(self, local: Any) -> Any:
        """``should_stop`` that every rank answers alike: True once any rank's ``local`` is."""
        if self.world == 1:
            return local
        return lambda: self.any(bool(local()))


def scoring_module(task: Any, model: Any) -> Any:
    """``model`` inside a module whose forward is ``task.score(model, batch)``: the module the
    accelerator prepares (DDP wraps it) and the training step calls.

    Why: DDP averages gradients only for a forward through its own wrapper, while a task's
    score reaches past the model's forward (a decoder runs its body and scores the trained
    positions with the head; the embedding task runs the model twice); wrapping the whole
    score keeps every task's forward inside DDP, and under autocast for fp16/bf16.
    """
    import torch

    class TaskScore(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, batch: dict[str, Any]) -> Any:
            return task.score(self.model, batch)

    return TaskScore()
