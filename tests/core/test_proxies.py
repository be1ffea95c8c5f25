"""Zero-cost proxies against values worked out by hand (or by a naive reference in this file)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from lga_lightning.core.proxies import (
    PROXIES,
    ProxyWarning,
    fisher,
    flops,
    grad_norm,
    grasp,
    jacob_cov,
    naswot,
    params,
    snip,
    synflow,
    zico,
)
from lga_lightning.core.signals import SIGNALS, check_proxies
from lga_lightning.search.spaces import nb201

W1 = [[1.0, -1.0], [2.0, 1.0]]
W2 = [[1.0, 2.0], [-1.0, 1.0]]
X = [[1.0, 2.0], [2.0, -1.0]]
Y = [0, 1]


def sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


# The MLP  z = W2 relu(W1 x)  (no biases) on the two inputs X with labels Y:
#   x1 = (1, 2):  h1 = W1 x1 = (1 - 2, 2 + 2) = (-1, 4), relu (0, 4), z1 = (0 + 8, 0 + 4) = (8, 4)
#   x2 = (2, -1): h2 = (2 + 1, 4 - 1) = (3, 3),  relu (3, 3),  z2 = (3 + 6, -3 + 3) = (9, 0)
# Softmax of two logits: p(class 0) = sigmoid(z0 - z1): sigmoid(4) for x1, sigmoid(9) for x2.
# With the mean loss over n = 2, dL/dz_i = (p_i - onehot(y_i)) / 2:
#   dz1 = (sigmoid(4) - 1, 1 - sigmoid(4)) / 2 = (-a, a) / 2,  a = 1 - sigmoid(4)
#   dz2 = (sigmoid(9), -sigmoid(9)) / 2 = (b, -b) / 2,         b = sigmoid(9)
A = 1.0 - sigmoid(4.0)
B = sigmoid(9.0)
# dW2 = sum_i dz_i relu(h_i)^T = 1/2 [[0 + 3b, -4a + 3b], [0 - 3b, 4a - 3b]]
DW2 = [[0.5 * 3 * B, 0.5 * (-4 * A + 3 * B)], [0.5 * -3 * B, 0.5 * (4 * A - 3 * B)]]
# dh_i = relu'(h_i) * W2^T dz_i:  W2^T (-a, a)/2 = (-a, -a/2), mask (0, 1) -> dh1 = (0, -a/2)
#                                 W2^T (b, -b)/2 = (b, b/2),   mask (1, 1) -> dh2 = (b, b/2)
# dW1 = dh1 x1^T + dh2 x2^T = [[0 + 2b, 0 - b], [-a/2 + b, -a - b/2]]
DW1 = [[2 * B, -B], [-A / 2 + B, -A - B / 2]]


def mlp(w1=W1, w2=W2, batchnorm: bool = False) -> nn.Sequential:
    layers = [nn.Linear(2, 2, bias=False)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(2))
    layers += [nn.ReLU(), nn.Linear(2, 2, bias=False)]
    net = nn.Sequential(*layers)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w1))
        net[-1].weight.copy_(torch.tensor(w2))
    return net


def data():
    return torch.tensor(X), torch.tensor(Y)


def frobenius(m):
    return math.sqrt(sum(v * v for row in m for v in row))


def test_grad_norm_by_hand():
    assert grad_norm(mlp(), *data()) == pytest.approx(frobenius(DW1) + frobenius(DW2), rel=1e-5)


def test_snip_by_hand():
    expected = sum(
        abs(w * g)
        for ws, gs in ((W1, DW1), (W2, DW2))
        for wr, gr in zip(ws, gs, strict=True)
        for w, g in zip(wr, gr, strict=True)
    )
    assert snip(mlp(), *data()) == pytest.approx(expected, rel=1e-5)


def test_fisher_by_hand():
    # act * grad per sample and unit (linear layers: no spatial sum):
    #   layer 1: h1 * dh1 = (-1 * 0, 4 * -a/2) = (0, -2a);  h2 * dh2 = (3b, 1.5b)
    #   layer 2: z1 * dz1 = (8 * -a/2, 4 * a/2) = (-4a, 2a); z2 * dz2 = (4.5b, 0)
    # per unit 0.5 * mean over the two samples of the square, summed:
    layer1 = 0.5 * ((0 + 9 * B**2) / 2 + (4 * A**2 + 2.25 * B**2) / 2)
    layer2 = 0.5 * ((16 * A**2 + 20.25 * B**2) / 2 + (4 * A**2 + 0) / 2)
    assert layer1 + layer2 == pytest.approx(0.5 * (12 * A**2 + 15.75 * B**2))
    assert fisher(mlp(), *data(), convention="channel") == pytest.approx(layer1 + layer2, rel=1e-5)
    # zero-cost-nas (the default): each unit's value given to its 2 incoming weights
    assert fisher(mlp(), *data()) == pytest.approx(2 * layer1 + 2 * layer2, rel=1e-5)
    # the per-channel total is a signal of its own, so a study or a search can name it
    assert PROXIES["fisher_channel"](mlp(), *data()) == pytest.approx(layer1 + layer2, rel=1e-5)
    assert check_proxies(["fisher_channel"]) == ("fisher_channel",)


def test_fisher_per_weight_counts_each_layers_fan_in():
    # conv (2 channels of 1x2x2 = 4 weights each) -> flatten -> linear (2 units of 2 weights)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), nn.Flatten(), nn.Linear(2, 3, bias=False))
    x, y = torch.randn(3, 1, 2, 2), torch.tensor([0, 2, 1])
    # the reference: the same network written out with functional ops, its outputs' gradients
    a1 = F.conv2d(x, net[0].weight.detach()).requires_grad_()  # (3, 2, 1, 1)
    a2 = (a1.flatten(1) @ net[2].weight.detach().T).detach().requires_grad_()
    d2 = torch.autograd.grad(F.cross_entropy(a2, y), a2)[0]
    d1 = torch.autograd.grad(a1.flatten(1) @ net[2].weight.detach().T, a1, d2)[0]
    f1 = 0.5 * (a1 * d1).sum((2, 3)).pow(2).mean(0).detach()  # per conv channel
    f2 = 0.5 * (a2 * d2).pow(2).mean(0).detach()  # per linear unit
    channel = float(f1.sum() + f2.sum())
    weight = float(4 * f1.sum() + 2 * f2.sum())
    assert fisher(net, x, y, convention="channel") == pytest.approx(channel, rel=1e-5)
    assert fisher(net, x, y) == pytest.approx(weight, rel=1e-5)
    with pytest.raises(ValueError, match="`convention` can be 'weight' or 'channel'"):
        fisher(net, x, y, convention="unit")


def test_grasp_matches_a_full_hessian_reference_and_its_sign():
    # Naive reference: the whole 8x8 Hessian of the mean cross-entropy in the flat weights,
    # written as plain tensor algebra (no nn.Module), then -theta . (H g).
    x, y = torch.tensor(X, dtype=torch.float64), torch.tensor(Y)
    theta = torch.tensor(W1 + W2, dtype=torch.float64).flatten()

    def loss(flat):
        w1, w2 = flat[:4].reshape(2, 2), flat[4:].reshape(2, 2)
        z = torch.relu(x @ w1.T) @ w2.T
        return (torch.logsumexp(z, 1) - z[torch.arange(2), y]).mean()

    g = torch.autograd.functional.jacobian(loss, theta)
    hessian = torch.autograd.functional.hessian(loss, theta)
    expected = float(-(theta * (hessian @ g)).sum())
    assert g[4:].tolist() == pytest.approx([v for row in DW2 for v in row])
    assert grasp(mlp(), *data()) == pytest.approx(expected, rel=1e-4, abs=1e-9)


def test_synflow_by_hand_with_batchnorm_removed_or_in_eval():
    # |W1| = [[1, 1], [2, 1]], |W2| = [[1, 2], [1, 1]], input (1, 1):
    #   h = (1 + 1, 2 + 1) = (2, 3), z = (2 + 6, 2 + 3) = (8, 5), R = 13.
    #   dR/dW2 = 1 h^T = [[2, 3], [2, 3]], sum |W2| * that = 2 + 6 + 2 + 3 = 13
    #   dR/dh = |W2|^T 1 = (2, 3), dR/dW1 = [[2, 2], [3, 3]], sum |W1| * that = 2 + 2 + 6 + 3 = 13
    x = torch.zeros(4, 2)
    assert synflow(mlp(), x) == pytest.approx(26.0)
    assert synflow(mlp(batchnorm=True), x) == pytest.approx(26.0)
    # eval-mode BatchNorm with running mean 0, var 1, gamma 1, beta 0 divides h by sqrt(1 + eps),
    # so R and each layer's term do too.
    eps = nn.BatchNorm1d(2).eps
    assert synflow(mlp(batchnorm=True), x, batchnorm="eval") == pytest.approx(
        26.0 / math.sqrt(1 + eps)
    )


def relu_net():
    net = nn.Sequential(nn.Linear(3, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(3))
        net[2].weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
    return net


def test_jacob_cov_by_hand():
    # d(sum of logits)/dx_i = W1^T (mask_i * W2^T) = mask_i * (1, 2, 3):
    #   x1 = (1, 1, -1) -> (1, 2, 0); x2 = (1, -1, 1) -> (1, 0, 3)
    # centred: (0, 1, -1) and (-1/3, -4/3, 5/3); dot = -4/3 - 5/3 = -3; norms^2 2 and 42/9
    r = -3 / math.sqrt(2 * 42 / 9)
    # 2x2 correlation matrix [[1, r], [r, 1]] has eigenvalues 1 + r and 1 - r
    k = 1e-5
    expected = -sum(math.log(v + k) + 1 / (v + k) for v in (1 + r, 1 - r))
    x = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, 1.0]])
    assert jacob_cov(relu_net(), x) == pytest.approx(expected, rel=1e-6)
    assert expected < 0


def test_naswot_by_hand():
    # ReLU codes of h = x: 110, 101, 000. N_A = 3 units; K = 3 - Hamming:
    #   d(110, 101) = 2, d(110, 000) = 2, d(101, 000) = 2 -> K = [[3, 1, 1], [1, 3, 1], [1, 1, 3]]
    #   det K = 3 (9 - 1) - 1 (3 - 1) + 1 (1 - 3) = 24 - 2 - 2 = 20
    x = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, 1.0], [-1.0, -1.0, -1.0]])
    assert naswot(relu_net(), x) == pytest.approx(math.log(20.0))


def test_zico_by_hand():
    # Two mini-batches of one sample each, loss of one sample (no 1/2):
    #   W2: g1 = (-a, a)^T (0, 4) = [[0, -4a], [0, 4a]],
    #       g2 = (b, -b)^T (3, 3) = [[3b, 3b], [-3b, -3b]]
    #   W1: g1 = (0, -a)^T (1, 2) = [[0, 0], [-a, -2a]],
    #       g2 = (2b, b)^T (2, -1) = [[4b, -2b], [2b, -b]]
    # For two values u, v: mean|g| / std(g) = (|u| + |v|) / |u - v|, which is 1 for opposite
    # signs or a zero; only W1[1, 1] has equal signs: (2a + b) / (b - 2a).
    expected = math.log(4.0) + math.log(3.0 + (2 * A + B) / (B - 2 * A))
    assert zico(mlp(), *data()) == pytest.approx(expected, rel=1e-5)


def test_zico_rejects_a_single_batch():
    with pytest.raises(ValueError, match="num_batches"):
        zico(mlp(), *data(), num_batches=1)


def test_params_and_flops_by_hand():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert params(net) == 3 * 4 + 4 + 4 * 2 + 2
    net[0].bias.requires_grad_(False)
    assert params(net) == 3 * 4 + 4 * 2 + 2
    cnn = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Flatten(), nn.Linear(3 * 25, 4))
    # conv: 3 * 5 * 5 outputs, each 2 * 3 * 3 MACs; linear: 4 outputs, each 75 MACs
    assert flops(cnn, torch.zeros(7, 2, 5, 5)) == 75 * 18 + 4 * 75


class FunctionalHead(nn.Module):
    """A conv body and a head written as a functional matmul (as attention blocks are)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(2, 3, 3, padding=1)
        self.head = nn.Parameter(torch.ones(3 * 25, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1) @ self.head


def test_flops_count_functional_matmuls_and_agree_with_torch_on_nb201():
    from torch.utils.flop_counter import FlopCounterMode

    # the head's 75 x 4 matmul counts like a linear layer's, which layer hooks would miss
    assert flops(FunctionalHead(), torch.zeros(7, 2, 5, 5)) == 75 * 18 + 4 * 75
    torch.manual_seed(0)
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    net = nb201.build(arch, C=8, N=1, num_classes=10)
    # by hand: every conv and the classifier, counted with layer hooks
    total = 0

    def count(module, _, out):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] ** 2
        else:
            per_output = module.in_features
        total += out[0].numel() * per_output

    hooks = [
        m.register_forward_hook(count)
        for m in net.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, 16, 16))
    for hook in hooks:
        hook.remove()
    assert flops(net, torch.zeros(2, 3, 16, 16)) == total == counter.get_total_flops() / 2


def test_every_proxy_is_higher_is_better_and_registered():
    assert set(PROXIES) == {
        "grad_norm",
        "snip",
        "grasp",
        "fisher",
        "fisher_channel",
        "synflow",
        "jacob_cov",
        "naswot",
        "zico",
        "params",
        "flops",
    }
    assert {SIGNALS[name].better for name in PROXIES} == {"max"}


def busy_cnn() -> nn.Module:
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
    )
    net[1].eval()  # mixed flags
    net[0].bias.requires_grad_(False)
    net[5].weight.grad = torch.full_like(net[5].weight, 0.25)
    return net


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_proxy_leaves_the_model_untouched(name):
    net = busy_cnn()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    flags = [p.requires_grad for p in net.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    x, y = torch.randn(6, 3, 6, 6), torch.tensor([0, 1, 2, 3, 4, 0])
    rng = torch.get_rng_state()
    value = PROXIES[name](net, x, y)
    assert math.isfinite(value)
    assert torch.equal(torch.get_rng_state(), rng)
    after = net.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], v) for k, v in state.items())
    assert [m.training for m in net.modules()] == modes
    assert [p.requires_grad for p in net.parameters()] == flags
    for before, p in zip(grads, net.parameters(), strict=True):
        assert (before is None and p.grad is None) or torch.equal(before, p.grad)


@pytest.mark.parametrize(
    "name", ["grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov", "naswot", "zico"]
)
def test_dead_network_gives_nan_and_a_proxy_warning(name):
    zeros = [[0.0, 0.0], [0.0, 0.0]]
    with pytest.warns(ProxyWarning, match=name):
        value = PROXIES[name](mlp(zeros, zeros), *data())
    assert math.isnan(value)


def test_every_proxy_runs_on_a_tiny_nb201_network():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|"  # noqa: E501
    torch.manual_seed(0)
    net = nb201.build(arch, C=4, N=1, num_classes=10)
    x, y = torch.randn(16, 3, 16, 16), torch.arange(16) % 10
    for name, proxy in PROXIES.items():
        assert math.isfinite(proxy(net, x, y)), name
