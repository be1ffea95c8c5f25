"""Data loading that makes a 2-process DDP run comparable step by step with one process."""

from __future__ import annotations

from torch.utils.data import DataLoader, Dataset, DistributedSampler


def comparable_loader(data: Dataset, devices: int, global_batch: int = 16) -> DataLoader:
    """A loader whose steps see the same samples with ``devices`` = 1 or 2.

    Lightning trains DDP with ``DistributedSampler(shuffle=True, seed=0)``: 2 ranks with batch
    ``global_batch / 2`` see, per step, the samples one process with batch ``global_batch`` sees
    through that sampler for a single replica.
    """
    if devices == 1:
        sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0)
        return DataLoader(data, batch_size=global_batch, sampler=sampler)
    return DataLoader(data, batch_size=global_batch // devices)
