"""Kernel metrics against hand-computed cases, numpy/scipy references and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from lga_lightning.core.functional import (
    NTKMetricWarning,
    condition_number,
    eigenvalues,
    frobenius_norm,
    kernel_correlation,
    kernel_distance,
    label_kernel,
    lga,
    mean,
    ntk_metrics,
    relative_kernel_difference,
    trace,
)


def random_psd(n: int, seed: int, rank: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(n, rank or n + 3, generator=g, dtype=torch.float64)
    return G @ G.T


def lga_reference(K: np.ndarray, y: np.ndarray) -> float:
    """LGA written from the paper's formula with numpy loops, independent of the package."""
    n = len(y)
    L = np.array([[1.0 if y[i] == y[j] else -1.0 for j in range(n)] for i in range(n)])
    dk, dl = K - K.mean(), L - L.mean()
    return float((dk * dl).sum() / (np.linalg.norm(dk) * np.linalg.norm(dl)))


labels_strategy = st.lists(st.integers(0, 3), min_size=4, max_size=12).filter(
    lambda y: len(set(y)) >= 2
)


def test_lga_of_the_label_kernel_is_one():
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    assert lga(label_kernel(y), y) == pytest.approx(1.0, abs=1e-12)
    assert lga(-label_kernel(y), y) == pytest.approx(-1.0, abs=1e-12)


def test_lga_matches_the_formula_and_pearson():
    K = random_psd(8, seed=1)
    y = np.array([0, 1, 0, 2, 1, 2, 0, 1])
    expected = lga_reference(K.numpy(), y)
    assert lga(K, torch.as_tensor(y)) == pytest.approx(expected, rel=1e-12)
    L = label_kernel(torch.as_tensor(y)).numpy()
    assert expected == pytest.approx(stats.pearsonr(K.numpy().ravel(), L.ravel())[0], rel=1e-10)


def test_off_diagonal_lga_drops_the_diagonal():
    K = random_psd(6, seed=2)
    y = np.array([0, 0, 1, 1, 2, 2])
    mask = ~np.eye(6, dtype=bool)
    L = label_kernel(torch.as_tensor(y)).numpy()
    expected = stats.pearsonr(K.numpy()[mask], L[mask])[0]
    assert lga(K, torch.as_tensor(y), off_diagonal=True) == pytest.approx(expected, rel=1e-10)
    # A kernel that only has a diagonal is uninformative once the diagonal is dropped.
    with pytest.warns(NTKMetricWarning, match="constant kernel"):
        assert math.isnan(lga(torch.eye(6), torch.as_tensor(y), off_diagonal=True))


@settings(max_examples=40, deadline=None)
@given(
    y=labels_strategy,
    seed=st.integers(0, 10_000),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-1e2, 1e2),
)
def test_lga_properties(y, seed, scale, shift):
    K = random_psd(len(y), seed)
    labels = torch.tensor(y)
    value = lga(K, labels)
    assert -1.0 <= value <= 1.0
    assert lga(scale * K, labels) == pytest.approx(value, rel=1e-9, abs=1e-9)
    assert lga(K + shift, labels) == pytest.approx(value, rel=1e-7, abs=1e-7)
    assert value == pytest.approx(lga_reference(K.numpy(), np.array(y)), rel=1e-9, abs=1e-12)


def test_lga_on_a_single_class_probe_is_nan_with_a_warning():
    with pytest.warns(NTKMetricWarning, match="single class.*class-balanced"):
        assert math.isnan(lga(random_psd(4, 0), torch.zeros(4, dtype=torch.long)))


def test_off_diagonal_lga_without_a_shared_class_blames_the_labels_not_the_kernel():
    y = torch.arange(5)  # one sample per class: every off-diagonal label entry is -1
    with pytest.warns(NTKMetricWarning, match="no two probe samples share a class") as caught:
        assert math.isnan(lga(random_psd(5, seed=9), y, off_diagonal=True))
    assert not any("constant kernel" in str(w.message) for w in caught)
    assert -1.0 <= lga(random_psd(5, seed=9), y) <= 1.0  # with the diagonal it is defined


def test_lga_on_a_constant_kernel_is_nan_with_a_warning():
    with pytest.warns(NTKMetricWarning, match="constant kernel"):
        assert math.isnan(lga(torch.full((4, 4), 3.0), torch.tensor([0, 1, 0, 1])))


def test_lga_on_non_finite_kernel_is_nan_with_a_warning():
    K = random_psd(4, 0)
    K[0, 1] = math.nan
    with pytest.warns(NTKMetricWarning, match="nan or inf"):
        assert math.isnan(lga(K, torch.tensor([0, 1, 0, 1])))


def test_lga_with_mismatched_labels_names_both_sizes():
    with pytest.raises(ValueError, match=r"kernel is \(4, 4\), got 3 labels"):
        lga(random_psd(4, 0), torch.tensor([0, 1, 0]))


def test_condition_number_against_numpy_and_simple_cases():
    assert condition_number(torch.eye(5)) == pytest.approx(1.0)
    K = random_psd(7, seed=3)
    w = np.linalg.eigvalsh(K.numpy())
    assert condition_number(K) == pytest.approx(w[-1] / w[0], rel=1e-10)
    assert condition_number(K.float()) == pytest.approx(w[-1] / w[0], rel=1e-3)


def test_singular_and_non_finite_kernels_give_documented_values():
    singular = random_psd(6, seed=4, rank=2)
    singular -= torch.eye(6) * 1e-9  # push the numerically-zero eigenvalues below zero
    with pytest.warns(NTKMetricWarning, match="singular"):
        assert condition_number(singular) == math.inf
    bad = torch.eye(3)
    bad[1, 1] = math.inf
    with pytest.warns(NTKMetricWarning, match="nan or inf"):
        assert math.isnan(condition_number(bad))


def test_eigenvalues_match_numpy():
    K = random_psd(6, seed=5)
    np.testing.assert_allclose(eigenvalues(K).numpy(), np.linalg.eigvalsh(K.numpy()), rtol=1e-10)


def test_norm_mean_trace_match_numpy():
    K = random_psd(5, seed=6)
    a = K.numpy()
    assert frobenius_norm(K) == pytest.approx(np.linalg.norm(a, "fro"), rel=1e-12)
    assert mean(K) == pytest.approx(a.mean(), rel=1e-12)
    assert trace(K) == pytest.approx(np.trace(a), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_evolution_metrics_properties(seed, scale):
    K0 = random_psd(6, seed)
    Kt = random_psd(6, seed + 1)
    assert kernel_distance(K0, K0) == pytest.approx(0.0, abs=1e-12)
    assert kernel_distance(K0, scale * K0) == pytest.approx(0.0, abs=1e-12)
    assert 0.0 <= kernel_distance(K0, Kt) <= 1.0
    assert kernel_correlation(K0, K0) == pytest.approx(1.0, abs=1e-12)
    assert relative_kernel_difference(K0, K0) == 0.0
    a, b = K0.numpy().ravel(), Kt.numpy().ravel()
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert kernel_distance(K0, Kt) == pytest.approx(1 - cosine, rel=1e-9, abs=1e-12)
    assert kernel_correlation(K0, Kt) == pytest.approx(np.corrcoef(a, b)[0, 1], rel=1e-9)
    expected_rel = np.linalg.norm(np.abs(a - b) / (np.abs(a) + 1e-4))
    assert relative_kernel_difference(K0, Kt) == pytest.approx(expected_rel, rel=1e-9)


def test_relative_kernel_difference_uses_the_official_eps_of_1e_4():
    """A 2x2 kernel worked by hand with the paper's code's eps, 1e-4."""
    K0 = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    Kt = torch.tensor([[3.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    # |K0 - Kt| = [[1, 1], [1, 0]];  |K0| + 1e-4 = [[2.0001, 0.0001], [0.0001, 1.0001]]
    # ratios: 1 / 2.0001, 1 / 0.0001 = 10000 (twice), 0 / 1.0001 = 0
    expected = math.sqrt((1 / 2.0001) ** 2 + 10000.0**2 + 10000.0**2)
    assert relative_kernel_difference(K0, Kt) == pytest.approx(expected, rel=1e-12)
    assert relative_kernel_difference(K0, Kt) == pytest.approx(14142.1356, rel=1e-8)
    # Given explicitly, eps replaces the default: the zero entries of K0 now dominate less.
    assert relative_kernel_difference(K0, Kt, eps=1.0) == pytest.approx(
        math.sqrt((1 / 3) ** 2 + 1.0 + 1.0), rel=1e-12
    )


@pytest.mark.parametrize("bad", [math.inf, math.nan])
@pytest.mark.parametrize(
    "metric", [kernel_distance, kernel_correlation, relative_kernel_difference]
)
def test_evolution_metrics_of_a_non_finite_kernel_are_nan_with_a_warning(metric, bad):
    K0 = random_psd(4, seed=10)
    Kt = K0.clone()
    Kt[0, 0] = bad
    for pair in ((K0, Kt), (Kt, K0)):
        with pytest.warns(NTKMetricWarning, match="nan or inf|non-finite"):
            assert math.isnan(metric(*pair))


def test_kernels_of_different_sizes_cannot_be_compared():
    with pytest.raises(ValueError, match="same probe batch"):
        kernel_distance(torch.eye(3), torch.eye(4))


def test_ntk_metrics_agrees_with_the_references():
    K = random_psd(8, seed=7)
    K0 = random_psd(8, seed=8)
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    result = ntk_metrics(
        K,
        torch.as_tensor(y),
        metrics=("lga", "condition_number", "frobenius_norm", "mean", "trace", "kernel_distance"),
        initial_kernel=K0,
    )
    a = K.numpy()
    w = np.linalg.eigvalsh(a)
    assert result["lga"] == pytest.approx(lga_reference(a, y), rel=1e-10)
    assert result["condition_number"] == pytest.approx(w[-1] / w[0], rel=1e-10)
    assert result["frobenius_norm"] == pytest.approx(np.linalg.norm(a), rel=1e-12)
    assert result["mean"] == pytest.approx(a.mean(), rel=1e-12)
    assert result["trace"] == pytest.approx(np.trace(a), rel=1e-12)
    b = K0.numpy().ravel()
    cos = a.ravel() @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert result["kernel_distance"] == pytest.approx(1 - cos, rel=1e-9)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"metrics": ("lga", "accuracy")}, r"unknown NTK metrics \['accuracy'\]"),
        ({"metrics": ("lga",), "labels": None}, "needs `labels`"),
        ({"metrics": ("kernel_distance",)}, "need `initial_kernel`"),
    ],
)
def test_ntk_metrics_bad_requests(kwargs, match):
    args = {"labels": torch.tensor([0, 1, 0, 1]), **kwargs}
    with pytest.raises(ValueError, match=match):
        ntk_metrics(torch.eye(4), **args)


def test_non_square_kernel_is_rejected():
    with pytest.raises(ValueError, match=r"square \(n, n\) matrix, got \(2, 3\)"):
        trace(torch.zeros(2, 3))
