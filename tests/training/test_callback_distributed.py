"""Row-sharded kernels across gloo processes against the single-process kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from lga_lightning.core.kernel import empirical_ntk, ntk_jacobian
from lga_lightning.training._distributed import (
    gather_kernel,
    local_batchnorm,
    rank_zero_buffers,
    shard_rows,
)

N, WORLD = 5, 2  # uneven shards: 2 and 3 rows


def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    )


def probe() -> torch.Tensor:
    return torch.randn(N, 2, 4, 4, generator=torch.Generator().manual_seed(1))


def worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model, x = network(), probe()
        bn = model[1]
        bn.running_mean.fill_(float(rank))  # ranks disagree, as after a DDP epoch
        own = bn.running_mean.clone()
        results = {}
        for output, bn_mode in (("sum", "train"), ("full", "train"), ("trace", "eval")):
            with rank_zero_buffers(model, WORLD), local_batchnorm(model):
                jac = ntk_jacobian(
                    model, x, rows=shard_rows(N, WORLD, rank), output=output, bn_mode=bn_mode
                )
            results[f"{output}-{bn_mode}"] = gather_kernel(jac, N, WORLD, rank, output)
        results["restored"] = torch.equal(bn.running_mean, own)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        # Leave together: a rank that exits while its peer's gloo threads still talk to it can
        # abort the peer ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.ddp
def test_sharded_kernel_equals_single_process_kernel(tmp_path: Path) -> None:
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    model, x = network(), probe()
    model[1].running_mean.fill_(0.0)  # rank 0's statistics
    for key in ("sum-train", "full-train", "trace-eval"):
        output, bn_mode = key.split("-")
        want = empirical_ntk(model, x, output=output, bn_mode=bn_mode, implementation="loop")
        for result in ranks:
            assert torch.equal(result[key], ranks[0][key])  # every rank holds the same kernel
        torch.testing.assert_close(ranks[0][key], want, rtol=1e-5, atol=1e-5)
    assert all(result["restored"] for result in ranks)


def test_shards_cover_every_row_once() -> None:
    for n in (1, 2, 7, 16):
        for world in (1, 2, 3, 5):
            rows = [i for r in range(world) for i in shard_rows(n, world, r)]
            assert rows == list(range(n))


def test_local_batchnorm_restores_sync_batchnorm() -> None:
    model = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm1d(3)))
    x = torch.randn(5, 3)
    with local_batchnorm(model):
        out = model(x)
        assert not isinstance(model[0], nn.SyncBatchNorm)
    assert type(model[0]) is nn.SyncBatchNorm
    torch.testing.assert_close(out, nn.functional.batch_norm(x, None, None, training=True))
