"""Row-sharded NTK computation across the processes of a distributed run.

Every rank runs the forward over the *whole* probe batch and differentiates only its shard of the
rows of ``J``. The kernel is then assembled block by block: each rank broadcasts its shard in
turn, every rank computes ``K[own rows, that shard]``, and one ``all_gather`` of the row blocks
gives every rank the same full kernel. Per rank this holds two shards of ``J`` (its own and the
one being received) instead of the whole ``J``.

Every function here is a collective when ``world_size > 1``: all ranks must call it, in the same
order, with the same ``n``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lga_lightning.core.kernel import Output, kernel_from_jacobian


def distributed_ready(world_size: int) -> bool:
    """Whether a process group is up and more than one process takes part."""
    return world_size > 1 and dist.is_available() and dist.is_initialized()


def shard_rows(n: int, world_size: int, rank: int) -> range:
    """The contiguous rows of an ``n``-sample probe that ``rank`` differentiates.

    Shards differ in size by at most one row; with more ranks than samples some are empty.

    Example:
        >>> [list(shard_rows(5, 2, r)) for r in range(2)]
        [[0, 1], [2, 3, 4]]
    """
    return range(n * rank // world_size, n * (rank + 1) // world_size)


def gather_kernel(jac: Tensor, n: int, world_size: int, rank: int, output: Output) -> Tensor:
    """Assemble the full kernel on every rank from each rank's Jacobian rows.

    Args:
        jac: this rank's rows ``(r, k, P)``, those of :func:`shard_rows`.
        n: number of probe samples.
        world_size: number of processes.
        rank: this process's global rank.
        output: the ``output`` the rows were computed with.

    Returns:
        The kernel, identical (bit for bit) on every rank.
    """
    if not distributed_ready(world_size):
        return kernel_from_jacobian(jac, output=output)
    sizes = [len(shard_rows(n, world_size, r)) for r in range(world_size)]
    k = jac.shape[1]
    per_row = k if output == "full" else 1
    received = jac.new_zeros((max(sizes), *jac.shape[1:]))
    blocks = []
    for src, size in enumerate(sizes):
        if src == rank:
            received[:size].copy_(jac)
        dist.broadcast(received, src=src)
        blocks.append(kernel_from_jacobian(jac, received[:size], output=output))
    own = torch.cat(blocks, dim=1)
    padded = own.new_zeros((max(sizes) * per_row, n * per_row))
    padded[: own.shape[0]].copy_(own)
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: s * per_row] for g, s in zip(gathered, sizes, strict=True)])


@contextlib.contextmanager
def rank_zero_buffers(module: nn.Module, world_size: int) -> Iterator[None]:
    """Give every rank rank 0's buffers for the duration of the block, then restore its own.

    Under DDP each rank updates BatchNorm running statistics with its own data after the last
    buffer broadcast, so the ranks disagree at the end of an epoch. A kernel that uses running
    statistics (``bn_mode="eval"``) must see one set of them: rank 0's, the one checkpoints keep.
    """
    buffers = [b for b in module.buffers() if b.numel() > 0]
    if not distributed_ready(world_size) or not buffers:
        yield
        return
    saved = [b.detach().clone() for b in buffers]
    try:
        with torch.no_grad():
            for b in buffers:
                dist.broadcast(b, src=0)
        yield
    finally:
        with torch.no_grad():
            for b, s in zip(buffers, saved, strict=True):
                b.copy_(s)


class _LocalBatchNorm(_BatchNorm):
    """BatchNorm statistics of the local batch; stands in for ``SyncBatchNorm`` temporarily."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")


@contextlib.contextmanager
def local_batchnorm(module: nn.Module) -> Iterator[None]:
    """Make ``SyncBatchNorm`` layers normalise with the local batch inside the block.

    Every rank runs the kernel's forward over the same whole probe batch, so synchronised
    statistics would equal local ones — but a synchronised backward would sum the different rows
    the ranks differentiate, and ranks with unequal shards would wait on each other forever.
    """
    swapped = [m for m in module.modules() if isinstance(m, nn.SyncBatchNorm)]
    try:
        for m in swapped:
            m.__class__ = _LocalBatchNorm
        yield
    finally:
        for m in swapped:
            m.__class__ = nn.SyncBatchNorm


def close_spawned_gloo_group(trainer: object) -> None:
    """At the end of a ``ddp_spawn`` worker's fit, close the gloo process group on every rank.

    A spawned worker that exits while its peer's gloo connection threads still run can abort
    (``terminate called without an active exception``) after all the work is done. The spawn
    launcher starts new workers (and a new group) for every Trainer call, so closing the group in
    step at teardown loses nothing. Other launchers and backends are left alone.
    """
    strategy = getattr(trainer, "strategy", None)
    launcher = type(getattr(strategy, "launcher", None)).__name__
    if (
        launcher == "_MultiProcessingLauncher"
        and dist.is_available()
        and dist.is_initialized()
        and dist.get_backend() == "gloo"
        and dist.get_world_size() > 1
    ):
        dist.barrier()
        dist.destroy_process_group()
