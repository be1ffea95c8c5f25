"""The kernel on a CUDA device: every implementation equals the float64 loop there.

Skipped (with the reason) where CUDA is not available; never counted as run without a GPU.
"""

from __future__ import annotations

import pytest
import torch

from lga_lightning.core.kernel import IMPLEMENTATIONS, empirical_ntk, samples_are_coupled
from lga_lightning.search.spaces import nb201

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(a - b) / torch.linalg.matrix_norm(b))


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
@pytest.mark.parametrize("output", ["sum", "trace"])
def test_every_implementation_on_cuda_equals_the_float64_loop(bn_mode, output):
    torch.manual_seed(0)
    model = nb201.build(ARCH, C=4, N=1, num_classes=5).double().cuda()
    x = torch.randn(12, 3, 8, 8, dtype=torch.float64, device="cuda")
    reference = empirical_ntk(
        model.cpu(), x.cpu(), implementation="loop", bn_mode=bn_mode, output=output
    )
    model.cuda()
    names = ["auto", *IMPLEMENTATIONS]
    if samples_are_coupled(model, bn_mode):
        names.remove("per_sample")
    for name in names:
        K = empirical_ntk(
            model, x, implementation=name, bn_mode=bn_mode, output=output, chunk_size=5
        )
        assert K.device.type == "cuda"
        assert rel_err(K.cpu(), reference) <= 1e-10, name


def test_the_kernel_leaves_the_cuda_random_stream_where_it_was():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3)
    ).cuda()
    x = torch.randn(6, 4, device="cuda")
    before = torch.cuda.get_rng_state()
    for name in IMPLEMENTATIONS:
        empirical_ntk(model, x, implementation=name)
    assert torch.equal(torch.cuda.get_rng_state(), before)
