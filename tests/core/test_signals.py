"""The one registry of signals: rows agree with their functions, every surface reads it, and a new
proxy or metric is one function and one row."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from lga_lightning.core.functional import EVOLUTION_METRICS, SCALAR_METRICS
from lga_lightning.core.kernel import empirical_ntk
from lga_lightning.core.meter import NTKMeter
from lga_lightning.core.proxies import PROXIES, snip
from lga_lightning.core.signals import (
    SIGNALS,
    Signal,
    UnknownSignalError,
    expected_sign,
    register,
    signal,
    signal_names,
    unregister,
)
from lga_lightning.search._search_checks import check_measurement
from lga_lightning.search.module import DEFAULT_METRICS
from lga_lightning.search.ranking import RECORD_QUANTITIES, Ranking
from recipes._paired import EPOCH_FREE
from recipes._rank import BASELINES


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_ranking_direction_and_study_sign_agree(name):
    sign = expected_sign(name)
    if sign == 0:
        with pytest.raises(ValueError, match="better or worse"):
            Ranking(name)
    else:
        assert Ranking(name).direction == ("max" if sign > 0 else "min")
        # a useful predictor's score rises with accuracy: higher score for the better value
        better, worse = (2.0, 1.0) if sign > 0 else (1.0, 2.0)
        ranking = Ranking(name)
        assert ranking.score({name: better}) > ranking.score({name: worse})


def test_every_recorded_quantity_is_in_the_table():
    for name in (*SCALAR_METRICS, *EVOLUTION_METRICS, *RECORD_QUANTITIES, *BASELINES):
        assert name in SIGNALS, name


def test_published_conventions():
    # TE-NAS: a small condition number is good; KNAS: a large mean is good; loss: small is good
    assert expected_sign("condition_number") == -1
    assert expected_sign("mean") == +1
    assert expected_sign("train_loss") == -1
    assert expected_sign("lga") == +1
    assert expected_sign("kernel_distance") == 0


# ---------------------------------------------------------------------------------------------
# the registry's rows against their functions

ROOT = Path(__file__).resolve().parents[2]
ROWS = [row for row in SIGNALS.values() if row.function is not None]


def spd_kernel(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n + 2, generator=g, dtype=torch.float64)
    return a @ a.T


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(6, 4, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_a_row_computes_with_what_it_declares_and_fails_without_its_labels(row):
    if row.kind == "kernel":
        kernel, labels = spd_kernel(), torch.tensor([0, 1, 0, 1, 0, 1])
        if row.needs_labels:
            assert math.isfinite(row.function(kernel, labels))
            with pytest.raises(TypeError):
                row.function(kernel)
        else:
            assert math.isfinite(row.function(kernel))
        assert set(row.needs) <= {"kernel", "labels"}
    elif row.kind == "evolution":
        assert math.isfinite(row.function(spd_kernel(seed=0), spd_kernel(seed=1)))
        assert len(set(row.needs) & {"initial_kernel", "previous_kernel"}) == 1
    else:
        net, (x, y) = tiny_net(), tiny_batch()
        with_labels = row.function(net, x, y)
        assert math.isfinite(with_labels)
        if row.needs_labels:
            with pytest.raises((TypeError, ValueError, AttributeError)):
                row.function(net, x, None)
        else:  # declared label-free: the labels change nothing
            assert row.function(net, x, None) == with_labels
        if "batch" not in row.needs:
            assert row.function(net) == with_labels
        assert row.needs[:2] == ("model", "batch") or row.needs == ("model",)


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_compute_names_a_missing_need(row):
    with pytest.raises(ValueError, match=rf"{row.name!r} needs \[.*'{row.needs[-1]}'"):
        row.compute()


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_a_functions_own_docstring_agrees_with_its_row(row):
    doc = " ".join((row.function.__doc__ or "").split())
    if "Higher is better" in doc or "higher is better" in doc:
        assert row.better == "max"
    if "labels are not used" in doc or "``y`` is not used" in doc:
        assert not row.needs_labels


def test_training_rows_have_nothing_to_compute():
    for name in signal_names("training"):
        with pytest.raises(ValueError, match="recorded by the training run"):
            signal(name).compute()


def test_fisher_row_documents_both_totals_and_passes_the_convention_on():
    row = signal("fisher")
    assert "convention='weight'" in row.note and "convention='channel'" in row.note
    # one linear layer, weights (1, 0, 0) and (-1, 0, 0), input (1, 0, 0), label 0: the outputs
    # a = (1, -1), d = dL/da = (p - 1, 1 - p) with p = sigmoid(2), so a_k d_k = -(1 - p) for both
    # channels and F_k = 0.5 (1 - p)^2; each channel has three weights.
    net = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]))
    x, y = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0])
    f = 0.5 * (1.0 - 1.0 / (1.0 + math.exp(-2.0))) ** 2
    assert row.compute(model=net, batch=x, labels=y) == pytest.approx(3 * 2 * f, rel=1e-6)
    channel = row.compute(model=net, batch=x, labels=y, convention="channel")
    assert channel == pytest.approx(2 * f, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# unknown names


def test_an_unknown_name_lists_the_close_matches():
    with pytest.raises(UnknownSignalError, match="did you mean 'condition_number'") as caught:
        signal("condition_nuber")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)
    with pytest.raises(UnknownSignalError, match=r"^unknown signal 'zzz'; Known: lga, "):
        signal("zzz")
    with pytest.raises(ValueError, match=r"unknown `proxies` \['snipp'\].*did you mean 'snip'"):
        NTKMeter(proxies=["snipp"])
    with pytest.raises(ValueError, match=r"unknown `metrics` \['lgaa'\].*did you mean 'lga'"):
        NTKMeter(["lgaa"])


def test_register_refuses_a_taken_name_and_a_row_without_a_function():
    with pytest.raises(ValueError, match="'snip' is taken"):
        register(Signal("snip", "max", "proxy", "again", snip))
    with pytest.raises(ValueError, match="a proxy signal needs a function"):
        register(Signal("nothing", "max", "proxy", "no function"))
    with pytest.raises(ValueError, match=r"needs \['kernels'\] are not among"):
        register(Signal("bad", None, "kernel", "bad need", lambda k: 0.0, ("kernels",)))  # type: ignore[arg-type]
    assert "nothing" not in SIGNALS and "bad" not in SIGNALS
    with pytest.raises(ValueError, match="built-in"):
        unregister("lga")


# ---------------------------------------------------------------------------------------------
# one place: no module besides the registry lists signal names

#: (module, names) literals that may list signal names, and why.
ALLOWED_LISTS = {
    # plot layout: which evolution curves share a panel
    ("lga_lightning/core/evolution.py", frozenset({"kernel_distance", "kernel_velocity"})),
}


def test_no_module_outside_the_registry_lists_signal_names():
    names = set(SIGNALS)
    found = []
    for path in sorted(
        [*(ROOT / "lga_lightning").rglob("*.py"), *(ROOT / "recipes").rglob("*.py")]
    ):
        module = path.relative_to(ROOT).as_posix()
        if module == "lga_lightning/core/signals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Tuple, ast.List, ast.Set)) or len(node.elts) < 2:
                continue
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            if all(v in names for v in values) and (module, frozenset(values)) not in ALLOWED_LISTS:
                found.append(f"{module}:{node.lineno} {values}")
    assert found == [], "read these from lga_lightning.core.signals instead"


def test_the_lists_elsewhere_are_the_registrys():
    assert SCALAR_METRICS == ("lga", "condition_number", "frobenius_norm", "mean", "trace")
    assert EVOLUTION_METRICS == (
        "kernel_distance",
        "kernel_correlation",
        "relative_kernel_difference",
    )
    assert DEFAULT_METRICS == SCALAR_METRICS
    assert RECORD_QUANTITIES == ("train_loss", "val_acc", "params")
    assert BASELINES == ("params", "flops", "train_loss", "val_acc")
    assert EPOCH_FREE == ("params", "flops")
    assert list(PROXIES) == [
        "grad_norm", "snip", "grasp", "fisher", "fisher_channel", "synflow", "jacob_cov",
        "naswot", "zico", "params", "flops",
    ]  # fmt: skip
    assert all(PROXIES[name] is SIGNALS[name].function for name in PROXIES)


# ---------------------------------------------------------------------------------------------
# the extension point: a new proxy (or kernel metric) is one function and one row


def conv_count(model: nn.Module, x: torch.Tensor | None = None, y: torch.Tensor | None = None):
    """Toy proxy: the number of convolutions (fewer taken as better, to see the direction)."""
    return float(sum(isinstance(m, nn.Conv2d) for m in model.modules()))


def same_class_mean(kernel: torch.Tensor, labels: torch.Tensor) -> float:
    """Toy kernel metric: the mean kernel entry over pairs of one class."""
    same = labels[:, None] == labels[None, :]
    return float(kernel.double()[same].mean())


@pytest.fixture
def toys():
    rows = [
        register(Signal("conv_count", "min", "proxy", "convolutions", conv_count, ("model",))),
        register(
            Signal("same_class_mean", "max", "kernel", "same-class mean entry", same_class_mean,
                   ("kernel", "labels"))
        ),
    ]  # fmt: skip
    yield rows
    for row in rows:
        unregister(row.name)
    assert "conv_count" not in SIGNALS and "same_class_mean" not in SIGNALS


def test_a_registered_proxy_and_metric_are_measured_by_the_meter(toys):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.Flatten(),
                        nn.Linear(2, 3))  # fmt: skip
    x, y = torch.randn(6, 1, 5, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    meter = NTKMeter(["lga", "same_class_mean"], proxies=["conv_count", "params"])
    meter.set_probes([(x, y)])
    record = meter.measure(net, epoch=0)
    kernel = empirical_ntk(net, x).double()
    pairs = [(i, j) for i in range(6) for j in range(6) if y[i] == y[j]]  # 6 pairs per class
    by_hand = sum(float(kernel[i, j]) for i, j in pairs) / len(pairs)
    assert record["conv_count"] == 2.0
    assert record["same_class_mean"] == pytest.approx(by_hand, rel=1e-6)
    assert meter.keys == ["lga", "same_class_mean", "conv_count", "params"]
    assert "conv_count" in PROXIES and "conv_count" in meter.last_seconds
    # the defaults do not change when a signal is registered
    assert NTKMeter().metrics == SCALAR_METRICS and "same_class_mean" not in SCALAR_METRICS


def test_a_registered_proxy_ranks_a_search_in_its_direction(toys, tmp_path):
    from _search_run import A, B, C, fit

    from lga_lightning.search import Plain

    meter = NTKMeter(["lga", "same_class_mean"], proxies=["conv_count"])
    search, _ = fit(tmp_path, Plain(archs=[A, B, C], epochs=1), meter=meter, rank_by="conv_count")
    by_arch = {r["arch"]: r for r in search.leaderboard}
    # A and C hold three convolution ops, B two, in each of the three cells (N=1 per stage);
    # the rest of an NB201 network is the same
    assert by_arch[A]["conv_count"] - by_arch[B]["conv_count"] == 3
    assert by_arch[C]["conv_count"] - by_arch[B]["conv_count"] == 3
    assert search.ranking.direction == "min" and search.leaderboard[0]["arch"] == B
    assert search.summary["signal"] == "conv_count"
    assert all(math.isfinite(r["same_class_mean"]) for r in search.leaderboard)


def test_a_registered_kernel_metric_is_accepted_by_the_search_as_it_is_by_the_meter(toys, tmp_path):
    from _search_run import A, datamodule, fit

    from lga_lightning.core.probe import DEFAULT_PROBE_SEED
    from lga_lightning.search import Plain
    from lga_lightning.search.seeding import derive_seed
    from lga_lightning.search.spaces import NB201Space

    metrics = ["lga", "same_class_mean"]
    assert check_measurement(metrics, (), None, probe_size=8, meter=None)[0] == tuple(metrics)
    search, _ = fit(
        tmp_path,
        Plain(archs=[A], epochs=1, measure_at=(0, 1)),
        metrics=metrics,
        rank_by="same_class_mean",
    )
    assert search.ranking.direction == "max"  # the row's direction
    record = next(r for r in search.records if r["epoch"] == 0)
    # by hand: candidate 0 at initialisation, on the search's probe
    torch.manual_seed(derive_seed(0, "init", 0))
    net = NB201Space(C=4, N=1).build(A, num_classes=10, in_channels=3)
    x, y = datamodule().probe_batch(16, seed=DEFAULT_PROBE_SEED)
    expected = same_class_mean(empirical_ntk(net, x), y)
    assert record["same_class_mean"] == pytest.approx(expected, rel=1e-5)
    assert search.leaderboard[0]["score"] == search.leaderboard[0]["same_class_mean"]


def test_the_search_and_the_callback_refuse_an_unknown_metric_naming_the_choices():
    from lga_lightning import NTKMetrics
    from lga_lightning.search import LGASearch

    pattern = r"unknown `metrics` \['lgaa'\]; choose from \['lga', 'condition_number'.*'lga'\?"
    with pytest.raises(ValueError, match=pattern) as searched:
        LGASearch(metrics=["lgaa"], progress=False, verbose=False)
    with pytest.raises(ValueError, match=pattern) as measured:
        NTKMetrics(metrics=["lgaa"])
    # the same check; the callback follows one run, so it offers the evolution metrics too
    assert "kernel_distance" in str(measured.value)
    assert "kernel_distance" not in str(searched.value)
    # the search measures each candidate on its own: no initial kernel to compare to
    with pytest.raises(ValueError, match="evolution metrics compare a run's kernels"):
        check_measurement(["kernel_distance"], (), None, probe_size=8, meter=None)
    assert NTKMetrics(metrics=["kernel_distance"]).metrics == ("kernel_distance",)


def test_a_removed_kernel_metric_is_refused_by_the_search_again():
    row = register(Signal("toy_trace", "max", "kernel", "trace", lambda k: float(k.trace())))
    try:
        assert check_measurement(["toy_trace"], (), None, probe_size=8, meter=None)[0] == (
            "toy_trace",
        )
    finally:
        unregister(row.name)
    with pytest.raises(ValueError, match=r"unknown `metrics` \['toy_trace'\]"):
        check_measurement(["toy_trace"], (), None, probe_size=8, meter=None)
