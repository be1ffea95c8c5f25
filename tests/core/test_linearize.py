"""Tests of the linearised model against independent references (float64)."""

from __future__ import annotations

import copy
import io

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lga_lightning.core.linearization import LinearizedModel, linearize

TOL = 1e-6


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def _cnn_bn(momentum: float | None = 0.1) -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4, momentum=momentum),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.BatchNorm2d(6, momentum=momentum),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).double()
    # Non-trivial running statistics and affine parameters, as after some training.
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 8, 8, dtype=torch.float64) * 2 + 0.5)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def _input(model_name: str, n: int = 6) -> torch.Tensor:
    shape = (n, 5) if model_name == "mlp" else (n, 3, 8, 8)
    return torch.randn(*shape, dtype=torch.float64)


MODELS = {"mlp": _mlp, "cnn_bn": _cnn_bn}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _grads(output: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(output, params, retain_graph=True))


def _perturb(module: nn.Module, scale: float = 0.3) -> None:
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn_like(p))


# (a) equal to the original at theta_0 ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_equals_original_at_theta0_eval_mode(name: str) -> None:
    model = MODELS[name]()
    x = _input(name)
    lin = linearize(model)
    model.eval()
    expected = model(x)
    for training in (True, False):
        lin.train(training)
        torch.testing.assert_close(lin(x), expected, atol=TOL, rtol=0)


def test_equals_original_at_theta0_train_mode_and_tracks_running_stats() -> None:
    model = _cnn_bn()
    x = _input("cnn_bn")
    lin = linearize(model, mode="train")
    lin.train()
    model.train()
    torch.testing.assert_close(lin(x), model(x), atol=TOL, rtol=0)
    lin_buffers = {k: v for k, v in lin.named_buffers() if not k.startswith("_theta0.")}
    ref_buffers = dict(model.named_buffers())
    assert lin_buffers.keys() == ref_buffers.keys()
    for k, v in ref_buffers.items():
        torch.testing.assert_close(lin_buffers[k], v, atol=1e-12, rtol=0)
    lin.eval()
    model.eval()
    torch.testing.assert_close(lin(x), model(x), atol=TOL, rtol=0)


def test_train_mode_cumulative_running_average() -> None:
    model = _cnn_bn(momentum=None)
    lin = linearize(model, mode="train").train()
    model.train()
    for _ in range(2):
        x = _input("cnn_bn")
        torch.testing.assert_close(lin(x), model(x), atol=TOL, rtol=0)
    assert lin.get_submodule("1").num_batches_tracked.dtype == torch.int64
    assert (
        lin.get_submodule("1").num_batches_tracked.item()
        == model.get_submodule("1").num_batches_tracked.item()
    )
    torch.testing.assert_close(
        lin.get_submodule("4").running_var, model.get_submodule("4").running_var, atol=1e-12, rtol=0
    )


def test_eval_mode_freezes_statistics_and_restores_flags() -> None:
    model = _cnn_bn()
    lin = linearize(model).train()
    before = {k: v.clone() for k, v in lin.state_dict().items()}
    lin(_input("cnn_bn"))
    for k, v in lin.state_dict().items():
        torch.testing.assert_close(v, before[k], atol=0, rtol=0)
    assert all(m.training for m in lin.modules())
    lin.eval()
    lin(_input("cnn_bn"))
    assert not any(m.training for m in lin.modules())


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("training", [True, False])
def test_runs_under_inference_mode(mode: str, training: bool) -> None:
    """Lightning evaluates under `torch.inference_mode`; the result matches the original."""
    model = _cnn_bn()
    lin = linearize(model, mode=mode).train(training)
    model.train(mode == "train" and training)
    with torch.inference_mode():
        x = _input("cnn_bn")
        out, expected = lin(x), model(x)
    torch.testing.assert_close(out, expected, atol=TOL, rtol=0)
    assert (
        lin.get_submodule("1").num_batches_tracked == model.get_submodule("1").num_batches_tracked
    )


# (b) gradient at theta_0 is the original's Jacobian transpose -----------------------------------


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradient_at_theta0_equals_original(name: str, mode: str) -> None:
    model = MODELS[name]()
    x = _input(name)
    lin = linearize(model, mode=mode).train()
    model.train(mode == "train")
    out_lin, out_ref = lin(x), model(x)
    v = torch.randn_like(out_ref)
    params_lin, params_ref = list(lin.parameters()), list(model.parameters())
    assert [p.shape for p in params_lin] == [p.shape for p in params_ref]
    for weights in (torch.ones_like(v), v):  # sum of outputs, then a random cotangent
        g_lin = _grads((out_lin * weights).sum(), params_lin)
        g_ref = _grads((out_ref * weights).sum(), params_ref)
        for a, b in zip(g_lin, g_ref, strict=True):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_jacobian_is_constant_in_theta() -> None:
    """Away from theta_0 the Jacobian of f_lin is still the original's Jacobian at theta_0."""
    model = _mlp()
    x = _input("mlp", n=3)
    names = [n for n, _ in model.named_parameters()]
    theta0 = tuple(p.detach().clone() for p in model.parameters())

    def jac_of(module: nn.Module, values: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        def f(*ps: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(module, dict(zip(names, ps, strict=True)), (x,))

        return torch.autograd.functional.jacobian(f, values)

    lin = linearize(model)
    theta = tuple(t + 0.5 * torch.randn_like(t) for t in theta0)
    for a, b in zip(jac_of(lin, theta), jac_of(model, theta0), strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


# (c) a model linear in its parameters is its own linearisation ----------------------------------


class _FixedFeatures(nn.Module):
    """Random frozen tanh features followed by a trainable linear read-out."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Linear(5, 16)
        self.features.requires_grad_(False)
        self.readout = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(torch.tanh(self.features(x)))


@pytest.mark.parametrize(
    ("factory", "selection"),
    [
        (lambda: nn.Linear(5, 3), None),
        # Two stacked linear layers are bilinear in the parameters: linearise only the last one.
        (lambda: nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3)), ["1.weight", "1.bias"]),
    ],
    ids=["linear", "last-layer"],
)
def test_model_linear_in_parameters_equals_its_linearisation(factory, selection) -> None:  # noqa: ANN001
    model = factory().double()
    lin = linearize(model, param_selection=selection)
    x = _input("mlp", n=9)
    for _ in range(3):
        _perturb(lin, scale=2.0)
        with torch.no_grad():
            for p_ref, p_lin in zip(model.parameters(), lin.parameters(), strict=True):
                p_ref.copy_(p_lin)
        torch.testing.assert_close(lin(x), model(x), atol=1e-10, rtol=0)


def test_fixed_feature_model_unchanged_by_linearisation() -> None:
    model = _FixedFeatures().double()
    lin = linearize(model)
    assert lin.linearized_names == ("readout.weight", "readout.bias")
    assert not lin.features.weight.requires_grad
    x = _input("mlp", n=9)
    _perturb(lin, scale=2.0)
    with torch.no_grad():
        model.readout.weight.copy_(lin.readout.weight)
        model.readout.bias.copy_(lin.readout.bias)
    torch.testing.assert_close(lin(x), model(x), atol=1e-10, rtol=0)


# (d) after training, f_lin is the first-order Taylor expansion ----------------------------------


def _tiny_net(x: torch.Tensor, w1, b1, w2, b2) -> torch.Tensor:  # noqa: ANN001
    """The `_mlp` network written out by hand, independent of nn.Module and torch.func."""
    return torch.tanh(x @ w1.T + b1) @ w2.T + b2


def test_trained_linearisation_is_first_order_taylor_expansion() -> None:
    model = _mlp()
    theta0 = tuple(p.detach().clone() for p in model.parameters())
    lin = linearize(model)
    opt = torch.optim.SGD(lin.parameters(), lr=0.2, momentum=0.9)
    x_train, y_train = _input("mlp", n=32), torch.randn(32, 3, dtype=torch.float64)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.mse_loss(lin(x_train), y_train).backward()
        opt.step()
    delta = tuple(p.detach() - t0 for p, t0 in zip(lin.parameters(), theta0, strict=True))
    assert max(d.abs().max().item() for d in delta) > 1e-2  # it moved

    x = _input("mlp", n=10)

    def f(*ps: torch.Tensor) -> torch.Tensor:
        return _tiny_net(x, *ps)

    f0, jv = torch.autograd.functional.jvp(f, theta0, delta)
    torch.testing.assert_close(lin(x), f0 + jv, atol=TOL, rtol=0)

    eps = 1e-5
    plus = f(*(t + eps * d for t, d in zip(theta0, delta, strict=True)))
    minus = f(*(t - eps * d for t, d in zip(theta0, delta, strict=True)))
    torch.testing.assert_close(lin(x), f0 + (plus - minus) / (2 * eps), atol=TOL, rtol=0)

    # The network at the trained parameters is a different function: the test is not vacuous.
    theta = tuple(p.detach() for p in lin.parameters())
    assert (f(*theta) - lin(x)).abs().max() > 1e-3


# (e) training inside a real Trainer -------------------------------------------------------------


class _Classifier(L.LightningModule):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.losses: list[float] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = nn.functional.cross_entropy(self.model(x), y)
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.2)


def test_trains_inside_lightning_trainer() -> None:
    L.seed_everything(0, verbose=False)
    model = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    model(torch.randn(32, 5))  # running statistics away from their defaults
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    module = _Classifier(linearize(model))
    original_names = [f"model.{n}" for n, _ in model.named_parameters()]
    assert [n for n, _ in module.named_parameters()] == original_names
    theta0 = {k: v.clone() for k, v in module.model.reference_parameters().items()}

    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=8,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=64))

    assert len(module.losses) == 8
    assert module.losses[-1] < module.losses[0] - 1e-3
    for k, v in module.model.reference_parameters().items():
        torch.testing.assert_close(v, theta0[k], atol=0, rtol=0)
    assert any((p - theta0[n]).abs().max() > 0 for n, p in module.model.named_parameters())


# (f) the linearisation is a deep copy -----------------------------------------------------------


def test_training_original_afterwards_leaves_linearisation_unchanged() -> None:
    model = _cnn_bn()
    lin = linearize(model).eval()
    x = _input("cnn_bn")
    before = lin(x).detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    for _ in range(3):
        opt.zero_grad()
        model(x).square().sum().backward()
        opt.step()
    torch.testing.assert_close(lin(x), before, atol=0, rtol=0)
    assert lin.get_submodule("0").weight is not model.get_submodule("0").weight


# Outputs, devices/dtypes, state dicts, errors ---------------------------------------------------


class _DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(5, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.relu(self.body(x))
        return {"logits": self.head(h), "features": h}


def test_output_fn_and_structured_outputs() -> None:
    model = _DictOut().double()
    x = _input("mlp")
    picked = linearize(model, output_fn=lambda out: out["logits"])
    torch.testing.assert_close(picked(x), model(x)["logits"], atol=TOL, rtol=0)

    whole = linearize(model)  # every tensor of the output is linearised
    _perturb(whole)
    out = whole(x)
    assert set(out) == {"logits", "features"}
    picked.load_state_dict(whole.state_dict())
    torch.testing.assert_close(out["logits"], picked(x), atol=1e-12, rtol=0)
    # The features are linear in the body's parameters before the ReLU, not after it.
    assert (out["features"] - model(x)["features"]).abs().max() > 1e-3


def test_dtype_conversion_and_state_dict_round_trip() -> None:
    model = _cnn_bn().float()
    lin = linearize(model).double()
    assert all(t.dtype == torch.float64 for t in lin.state_dict().values() if t.is_floating_point())
    _perturb(lin)
    x = _input("cnn_bn")
    expected = lin(x)

    buffer = io.BytesIO()
    torch.save(lin.state_dict(), buffer)
    buffer.seek(0)
    other = linearize(_cnn_bn()).double()  # different theta_0 and running statistics
    other.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(other(x), expected, atol=1e-12, rtol=0)
    assert "_theta0.0.weight" in lin.state_dict()

    clone = copy.deepcopy(lin)
    torch.testing.assert_close(clone(x), expected, atol=1e-12, rtol=0)


class _RootTensors(nn.Module):
    """Parameters and buffers registered on the root module itself."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(5, 3))
        self.register_buffer("offset", torch.randn(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin((x - self.offset) @ self.weight)


def test_root_level_parameters_and_buffers() -> None:
    model = _RootTensors()
    lin = linearize(model).double()
    model.double()
    x = _input("mlp")
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    assert set(lin.state_dict()) == {"weight", "offset", "_theta0.weight"}
    torch.testing.assert_close(lin(x), model(x), atol=TOL, rtol=0)
    g_lin = _grads(lin(x).sum(), [lin.weight])
    g_ref = _grads(model(x).sum(), [model.weight])
    torch.testing.assert_close(g_lin[0], g_ref[0], atol=TOL, rtol=0)


def test_invalid_arguments_raise_actionable_errors() -> None:
    model = _mlp()
    with pytest.raises(ValueError, match="`mode` can be"):
        linearize(model, mode="batch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not have"):
        linearize(model, param_selection=["0.weight", "classifier.weight"])
    with pytest.raises(ValueError, match="No parameter selected"):
        linearize(model, param_selection=lambda name, p: False)
    with pytest.raises(TypeError, match="iterable of parameter names"):
        linearize(model, param_selection="0.weight")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="torch.nn.Module"):
        linearize(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`params` was renamed to `param_selection` in 0.3"):
        linearize(model, params=None)
    assert isinstance(linearize(model), LinearizedModel)
