"""Paired comparisons of study rows: difference in signed tau, paired bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recipes._paired import default_pairs, paired_difference, paired_table, parse_pair
from recipes._rank import bootstrap_tau, kendall_rows


def test_kendall_rows_is_scipys_tau_b_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, (50, 30)).astype(float)  # many ties, like a bootstrap resample
    y = rng.integers(0, 9, (50, 30)).astype(float)
    expected = [stats.kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(kendall_rows(x, y), expected, atol=1e-12)
    assert np.isnan(kendall_rows(np.ones((1, 5)), np.arange(5.0)[None]))[0]


def synthetic(seed=0, n=100):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    a = truth + rng.normal(scale=0.3, size=n)  # built to rank the cells well
    b = truth + rng.normal(scale=2.0, size=n)  # noisier
    return truth, a, b


def test_a_signal_built_to_beat_another_has_an_interval_above_zero():
    truth, a, b = synthetic()
    diff, low, high = paired_difference(a, b, truth, (1, 1), resamples=1000)
    expected = stats.kendalltau(a, truth).statistic - stats.kendalltau(b, truth).statistic
    assert diff == pytest.approx(expected)
    assert 0 < low <= diff <= high
    reverse = paired_difference(b, a, truth, (1, 1), resamples=1000)
    assert reverse[0] == pytest.approx(-diff) and reverse[2] < 0


def test_identical_signals_give_zero_and_the_pairing_narrows_the_interval():
    truth, a, b = synthetic(1)
    assert paired_difference(a, a, truth, (1, 1), resamples=500) == (0.0, 0.0, 0.0)
    # a near-copy of b: its per-row interval overlaps b's, the paired one is far narrower
    c = b + np.random.default_rng(2).normal(scale=0.05, size=len(b))
    low_b, high_b = bootstrap_tau(b, truth, 1, 1000)
    _, low, high = paired_difference(c, b, truth, (1, 1), resamples=1000)
    assert high - low < (high_b - low_b) / 3


def test_a_negative_signal_is_compared_by_its_signed_tau():
    truth, a, _ = synthetic(3)
    diff, low, high = paired_difference(-a, a, truth, (-1, 1), resamples=300)
    assert (diff, low, high) == pytest.approx((0.0, 0.0, 0.0))


def test_default_and_named_pairs():
    truth, a, b = synthetic(4, n=40)
    params = np.arange(40.0)
    cols = {
        ("lga", "n8-train", 0): b,
        ("lga", "n8-train", 1): a,
        ("params", "-", 0): params,
        ("params", "-", 1): params,
    }
    pairs = default_pairs(cols)
    assert (("lga", "n8-train", 1), ("lga", "n8-train", 0)) in pairs
    assert (("lga", "n8-train", 0), ("params", "-", 0)) in pairs
    assert all(p[0][0] != "params" for p in pairs)
    assert parse_pair("lga[n8-train]@1 - lga@0", cols, [0, 1]) == pairs[0]
    with pytest.raises(ValueError, match="no row 'snip@1'"):
        parse_pair("snip@1 - params", cols, [0, 1])
    rows = paired_table(cols, truth, pairs[:1], resamples=200)
    assert rows[0]["a_signed_tau"] - rows[0]["b_signed_tau"] == pytest.approx(rows[0]["difference"])
