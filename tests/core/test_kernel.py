"""The NTK engine: every fast path against the per-sample reference loop, and no side effects."""

from __future__ import annotations

import copy
import itertools
import re

import pytest
import torch
from torch import nn

from lga_lightning.core.kernel import (
    empirical_ntk,
    kernel_from_jacobian,
    ntk_jacobian,
    samples_are_coupled,
    select_parameters,
)

NB201_ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(a - b) / torch.linalg.matrix_norm(b))


class SmallCNN(nn.Module):
    def __init__(self, bn: bool = True, classes: int = 5) -> None:
        super().__init__()
        norm = nn.BatchNorm2d(6) if bn else nn.Identity()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), norm, nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1)
        )
        self.bn_out = nn.BatchNorm2d(6) if bn else nn.Identity()
        self.classifier = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn_out(self.features(x)))
        return self.classifier(h.mean(dim=(2, 3)))


class ZeroOp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class TinyCell(nn.Module):
    """A DAG cell with a skip connection, a zero op and a conv edge, as in NB201 cells."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.zero = ZeroOp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1 = self.conv(x) + self.zero(x)
        return n1 + x  # skip connection to the output node


class CellNet(nn.Module):
    def __init__(self, c: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c))
        self.cells = nn.Sequential(TinyCell(c), TinyCell(c))
        self.classifier = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.cells(self.stem(x)).mean(dim=(2, 3)))


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.head(features), features


class DictOut(TupleOut):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        logits, features = super().forward(x)
        return {"features": features, "logits": logits}


def nb201_cells() -> nn.Module:
    """A NAS-Bench-201 network (C=4, N=1: three cells with conv, pool and skip edges)."""
    from lga_lightning.search.spaces import nb201

    return nb201.build(NB201_ARCH, C=4, N=1, num_classes=3)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))


def frozen_mlp() -> nn.Module:
    model = mlp()
    model[0].weight.requires_grad_(False)
    return model


IMAGE = (6, 3, 5, 5)
VECTOR = (6, 4)
CASES = {
    "mlp": (mlp, VECTOR, {}),
    "frozen": (frozen_mlp, VECTOR, {}),
    "cnn_bn": (SmallCNN, IMAGE, {}),
    "cnn_no_bn": (lambda: SmallCNN(bn=False), IMAGE, {}),
    "cell": (CellNet, IMAGE, {}),
    "nb201": (nb201_cells, (6, 3, 8, 8), {}),
    "tuple": (TupleOut, VECTOR, {"output_fn": lambda out: out[0]}),
    "dict": (DictOut, VECTOR, {}),
}


def build(case: str, dtype: torch.dtype) -> tuple[nn.Module, torch.Tensor, dict]:
    factory, shape, kwargs = CASES[case]
    torch.manual_seed(0)
    model = factory().to(dtype)
    x = torch.randn(*shape, dtype=dtype)
    return model, x, kwargs


OPTIONS = list(itertools.product(["sum", "trace", "full"], ["paper", "weights", "all"]))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("bn_mode", ["train", "eval"])
@pytest.mark.parametrize("output,selection", OPTIONS)
def test_fast_paths_equal_the_loop_in_float64(case, bn_mode, output, selection):
    model, x, kwargs = build(case, torch.float64)
    opts = dict(output=output, param_selection=selection, bn_mode=bn_mode, **kwargs)
    reference = empirical_ntk(model, x, implementation="loop", **opts)
    fast = ["coupled", "batched", "auto"]
    if not samples_are_coupled(model, bn_mode):
        fast.append("per_sample")
    for implementation in fast:  # chunk_size=4 over 6 samples: a full and a partial chunk
        K = empirical_ntk(model, x, implementation=implementation, chunk_size=4, **opts)
        assert K.shape == reference.shape
        assert rel_err(K, reference) <= 1e-10, implementation


@pytest.mark.parametrize("case", ["cnn_bn", "cell", "mlp"])
@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_fast_paths_equal_the_loop_in_float32(case, bn_mode):
    model, x, kwargs = build(case, torch.float32)
    reference = empirical_ntk(
        model.double(), x.double(), implementation="loop", bn_mode=bn_mode, **kwargs
    )
    model.float()
    for implementation in ["auto", "coupled", "batched", "loop"]:
        K = empirical_ntk(model, x, implementation=implementation, bn_mode=bn_mode, **kwargs)
        assert K.dtype == torch.float32
        assert rel_err(K.double(), reference) <= 1e-4


def test_loop_matches_an_independent_official_style_computation():
    """The reference itself against the paper's code pattern: backward into .grad per sample."""
    model, x, _ = build("cnn_bn", torch.float64)
    twin = copy.deepcopy(model).train()
    logits = twin(x)
    rows = []
    for i in range(len(x)):
        twin.zero_grad()
        logits[i : i + 1].backward(torch.ones_like(logits[i : i + 1]), retain_graph=True)
        rows.append(
            torch.cat(
                [
                    p.grad.reshape(-1)
                    for name, p in twin.named_parameters()
                    if "weight" in name and "classifier" not in name and p.grad is not None
                ]
            )
        )
    G = torch.stack(rows)
    expected = G @ G.T
    assert rel_err(empirical_ntk(model, x, implementation="loop"), expected) <= 1e-12


def test_trace_kernel_is_sum_of_full_kernel_diagonal_blocks():
    model, x, _ = build("cnn_bn", torch.float64)
    full = empirical_ntk(model, x, output="full")
    n, c = x.shape[0], 5
    blocks = full.reshape(n, c, n, c)
    expected = torch.einsum("icjc->ij", blocks)
    assert rel_err(empirical_ntk(model, x, output="trace"), expected) <= 1e-12


def test_bn_train_mode_couples_the_samples_and_eval_mode_does_not():
    model, x, _ = build("cnn_bn", torch.float64)
    first_row_full = empirical_ntk(model, x)[0, 0]
    first_row_alone = empirical_ntk(model, x[:3])[0, 0]
    assert not torch.isclose(first_row_full, first_row_alone)  # batch statistics changed
    eval_full = empirical_ntk(model, x, bn_mode="eval")[0, 0]
    eval_alone = empirical_ntk(model, x[:3], bn_mode="eval")[0, 0]
    assert torch.isclose(eval_full, eval_alone)


@pytest.mark.parametrize("implementation", ["loop", "coupled", "batched", "per_sample"])
def test_row_shards_assemble_the_full_kernel(implementation):
    model, x, _ = build("cnn_bn", torch.float64)
    bn_mode = "eval" if implementation == "per_sample" else "train"
    opts = dict(bn_mode=bn_mode, implementation=implementation)
    full = empirical_ntk(model, x, **opts)
    shards = [ntk_jacobian(model, x, rows=r, **opts) for r in ([0, 1, 2], [3, 4], slice(5, 6))]
    assert rel_err(kernel_from_jacobian(torch.cat(shards)), full) <= 1e-12
    block = kernel_from_jacobian(shards[0], shards[1])
    assert torch.allclose(block, full[:3, 3:5], rtol=1e-12, atol=0)


def snapshot(model: nn.Module) -> dict:
    return {
        "training": [m.training for m in model.modules()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "rng": torch.get_rng_state(),
    }


@pytest.mark.parametrize("implementation", ["loop", "coupled", "batched", "per_sample"])
def test_computing_the_kernel_has_no_side_effects(implementation):
    model, x, _ = build("cell", torch.float32)
    model.eval()
    model.cells[0].train()  # a mixed mode that must survive
    model.stem[0].weight.requires_grad_(False)
    model(x).sum().backward()  # some .grad present
    model.train()
    model(x)  # advance BN running statistics and counters away from their initial values
    model.eval()
    model.cells[0].train()
    torch.manual_seed(123)
    before = snapshot(model)
    bn_mode = "eval" if implementation == "per_sample" else "train"
    empirical_ntk(model, x, implementation=implementation, bn_mode=bn_mode)
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert torch.equal(after["rng"], before["rng"])
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key
    for g_before, g_after in zip(before["grad"], after["grad"], strict=True):
        assert (g_before is None and g_after is None) or torch.equal(g_before, g_after)


@pytest.mark.parametrize("implementation", ["loop", "coupled", "batched", "per_sample"])
def test_random_numbers_drawn_by_dropout_do_not_advance_the_global_rng(implementation):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Tanh(), nn.Linear(16, 3))
    x = torch.randn(6, 4)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    empirical_ntk(model, x, implementation=implementation)  # train mode: dropout is active
    assert torch.equal(torch.get_rng_state(), before)


def test_paper_selection_excludes_classifier_biases_and_frozen_weights():
    model = frozen_mlp()
    assert select_parameters(model).names == ("2.weight",)
    assert select_parameters(model, "weights").names == ("2.weight", "4.weight")
    assert select_parameters(model, "all").names == (
        "0.bias",
        "2.weight",
        "2.bias",
        "4.weight",
        "4.bias",
    )
    custom = select_parameters(model, lambda name, p: name.startswith("4."))
    assert custom.names == ("4.weight", "4.bias")
    assert select_parameters(SmallCNN(), classifier="features.3").names == (
        "features.0.weight",
        "features.1.weight",
        "bn_out.weight",
        "classifier.weight",
    )


def test_per_sample_path_is_refused_when_batchnorm_couples_samples():
    model, x, _ = build("cnn_bn", torch.float32)
    with pytest.raises(ValueError, match="implementation='coupled'"):
        empirical_ntk(model, x, implementation="per_sample")


def test_batchnorm_without_running_stats_counts_as_coupled_in_eval_mode():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, track_running_stats=False))
    assert samples_are_coupled(model, "eval")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"output": "mean"}, "`output` can be"),
        ({"bn_mode": "frozen"}, "`bn_mode` can be"),
        ({"implementation": "fast"}, "`implementation` can be"),
        ({"param_selection": "biases"}, "`param_selection` can be"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"classifier": "head"}, "not a submodule"),
    ],
)
def test_bad_options_name_the_choices(kwargs, match):
    model, x, _ = build("mlp", torch.float32)
    with pytest.raises(ValueError, match=match):
        empirical_ntk(model, x, **kwargs)


def test_a_model_with_no_selected_parameters_gets_a_clear_error():
    model = mlp().requires_grad_(False)
    with pytest.raises(ValueError, match="matched no trainable parameter.*param_selection='all'"):
        empirical_ntk(model, torch.randn(4, 4))


def test_outputs_that_are_not_logits_get_clear_errors():
    x = torch.randn(4, 4)
    with pytest.raises(ValueError, match="output_fn=lambda out: out\\[<index"):
        empirical_ntk(TupleOut(), x)


def test_dict_without_logits_and_wrong_shapes_are_explained():
    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x):
            return {"out": self.lin(x)}

    with pytest.raises(ValueError, match="no 'logits' entry"):
        empirical_ntk(Features(), torch.randn(4, 4), param_selection="all")
    conv = nn.Sequential(nn.Conv2d(3, 2, 1))
    with pytest.raises(ValueError, match=r"logits of shape \(n, C\) = \(2, C\).*output_fn"):
        empirical_ntk(conv, torch.randn(2, 3, 4, 4), param_selection="all")
    flat = empirical_ntk(
        conv, torch.randn(2, 3, 4, 4), param_selection="all", output_fn=lambda out: out.flatten(1)
    )
    assert flat.shape == (2, 2)


@pytest.mark.parametrize("implementation", ["loop", "coupled", "batched", "per_sample"])
def test_a_one_logit_per_sample_output_works_with_the_suggested_output_fn(implementation):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))  # (n,)
    x = torch.randn(5, 4)
    with pytest.raises(ValueError, match=r"model output is \(5,\)") as error:
        empirical_ntk(model, x, implementation=implementation)
    hint = re.search(r"`(lambda out: [^`]+)`", str(error.value)).group(1)
    K = empirical_ntk(model, x, implementation=implementation, output_fn=eval(hint))
    assert torch.allclose(K, empirical_ntk(model[:3], x), rtol=1e-5, atol=1e-6)


def test_inference_mode_is_refused_with_the_hook_to_use():
    model, x, _ = build("mlp", torch.float32)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="on_train_epoch_end"):
        empirical_ntk(model, x)


def test_inputs_under_no_grad_still_work():
    model, x, _ = build("mlp", torch.float64)
    expected = empirical_ntk(model, x)
    with torch.no_grad():
        K = empirical_ntk(model, x)
    assert torch.equal(K, expected)


@pytest.mark.parametrize("implementation", ["loop", "coupled", "batched", "per_sample"])
def test_inputs_made_under_inference_mode_are_accepted(implementation):
    model, x, _ = build("mlp", torch.float64)
    with torch.inference_mode():
        cached = x.clone()
    assert cached.is_inference()
    K = empirical_ntk(model, cached, implementation=implementation)
    assert torch.equal(K, empirical_ntk(model, x, implementation=implementation))


class TiedMLP(nn.Module):
    """Two layers sharing one weight tensor (registered under two names)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4, bias=False)
        self.second = nn.Linear(4, 4, bias=False)
        self.second.weight = self.first.weight
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.second(torch.tanh(self.first(x)))))


@pytest.mark.parametrize("implementation", ["loop", "coupled", "batched", "per_sample"])
def test_tied_weights_are_one_parameter_differentiated_through_every_use(implementation):
    torch.manual_seed(0)
    model = TiedMLP().double()
    x = torch.randn(5, 4, dtype=torch.float64)
    assert select_parameters(model).names == ("first.weight",)
    rows = []
    for i in range(len(x)):
        (g,) = torch.autograd.grad(model(x)[i].sum(), model.first.weight)
        rows.append(g.reshape(-1))  # the gradient summed over both uses of the tensor
    G = torch.stack(rows)
    K = empirical_ntk(model, x, implementation=implementation)
    assert rel_err(K, G @ G.T) <= 1e-12


# --------------------------------------------------------------------------------------------
# accuracy on the paper's network, and the network the paper's NTK scripts measure


def official_style_kernel(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The paper's code pattern: train mode, backward of each sample's logits into ``.grad``."""
    twin = copy.deepcopy(model).train()
    logits = twin(x)
    rows = []
    for i in range(len(x)):
        twin.zero_grad()
        logits[i : i + 1].backward(torch.ones_like(logits[i : i + 1]), retain_graph=True)
        rows.append(
            torch.cat(
                [
                    p.grad.reshape(-1)
                    for name, p in twin.named_parameters()
                    if "weight" in name and "classifier" not in name
                ]
            )
        )
    G = torch.stack(rows)
    return G @ G.T


def test_default_float32_kernel_is_as_accurate_as_the_loop_on_a_train_mode_nb201_network():
    """Float32 kernels against a float64 reference: the default path within 3x of the loop's error.

    The reference is the official-style loop (backward per sample into ``.grad``) on a float64
    copy of the model and probe, written out here rather than taken from the library. With
    float32 BatchNorm on channels-last tensors this setting measured ~1e-4 against ~5e-7 for the
    loop, so the bound separates the two layouts.
    """
    from lga_lightning.search.spaces import nb201

    torch.manual_seed(0)
    model = nb201.build(NB201_ARCH, C=8, N=1, num_classes=10)
    x = torch.randn(16, 3, 32, 32)
    reference = official_style_kernel(model.double(), x.double())
    model.float()
    loop = empirical_ntk(model, x, implementation="loop")
    default = empirical_ntk(model, x)
    assert default.dtype == loop.dtype == torch.float32
    loop_err = rel_err(loop.double(), reference)
    default_err = rel_err(default.double(), reference)
    assert loop_err < 1e-5  # float32 rounding, not a wrong kernel
    assert default_err <= 3 * loop_err + 1e-9, (default_err, loop_err)


def test_the_network_the_paper_measures_has_plain_cell_batchnorms_and_the_official_kernel():
    """``affine=False, track_running_stats=False`` cells: no BN weights, no statistics buffers."""
    from lga_lightning.search.spaces import nb201

    torch.manual_seed(0)
    model = nb201.build(NB201_ARCH, C=4, N=1, affine=False, track_running_stats=False).double()
    cells = [m for m in model.modules() if isinstance(m, nb201.InferCell)]
    cell_bns = [m for cell in cells for m in cell.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(cells) == 3  # N=1 cell in each of the three stages
    assert len(cell_bns) == 9  # three nor_conv_3x3 edges per cell
    for bn in cell_bns:
        assert bn.weight is None and bn.bias is None
        assert bn.running_mean is None and bn.running_var is None
        assert bn.num_batches_tracked is None
    # Outside the cells (stem, reduction blocks, lastact) BatchNorm stays affine, as upstream.
    assert model.stem[1].affine and model.lastact[0].track_running_stats
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    expected = official_style_kernel(model, x)
    for implementation in ("auto", "loop"):
        K = empirical_ntk(model, x, implementation=implementation)
        assert rel_err(K, expected) <= 1e-12, implementation
    # Statistics-free BatchNorm couples the samples even in eval mode.
    assert samples_are_coupled(model, "eval")


def test_a_channels_last_probe_gives_the_same_kernel_and_leaves_no_hooks_behind():
    model, x, _ = build("cell", torch.float64)
    expected = official_style_kernel(model, x)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    for implementation in ("auto", "coupled", "loop"):
        K = empirical_ntk(model, x_cl, implementation=implementation)
        assert rel_err(K, expected) <= 1e-12, implementation
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_a_lazy_model_is_refused_until_its_first_call_then_measured():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(5), nn.Tanh(), nn.Linear(5, 3))
    x = torch.randn(4, 2, 3)
    with pytest.raises(
        ValueError, match=r"lazy parameters that are not initialised yet \(\['1.weight'"
    ):
        empirical_ntk(model, x)
    model(x)  # the first call gives the lazy layer its input size
    kernel = empirical_ntk(model, x)
    assert kernel.shape == (4, 4) and torch.isfinite(kernel).all()


@pytest.mark.parametrize("name", ["empirical_ntk", "ntk_jacobian", "select_parameters"])
def test_the_0_2_keyword_params_is_refused_naming_the_new_one(name):
    import lga_lightning.core.kernel as kernel

    model, x, _ = build("mlp", torch.float32)
    args = (model,) if name == "select_parameters" else (model, x)
    with pytest.raises(TypeError, match=r"^`params` was renamed to `param_selection` in 0\.3\.$"):
        getattr(kernel, name)(*args, params="all")


def test_the_0_2_kernel_option_params_is_refused_by_the_meter_and_the_callback():
    from lga_lightning import NTKMeter, NTKMetrics

    for make in (NTKMeter, NTKMetrics):
        with pytest.raises(ValueError, match="`params` was renamed to `param_selection` in 0.3"):
            make(kernel_kwargs={"params": "all"})
    assert NTKMeter(kernel_kwargs={"param_selection": "all"}).kernel_kwargs == {
        "param_selection": "all"
    }
