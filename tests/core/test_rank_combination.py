"""Rank combination against rankings worked out by hand, ties and nan included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lga_lightning.core.rank_combination import rank_best_highest, sum_of_log_ranks, sum_of_ranks

NAN = float("nan")
COLUMNS = {
    # higher is better. Ascending with nan lowest: nan -> 1, 0.1 -> 2, 0.2 -> 3,
    # the two 0.5 share ranks 4 and 5 -> 4.5 each.
    "a": [0.2, 0.5, 0.5, NAN, 0.1],
    # lower is better. Worst (largest) first: 5 -> 1, 3 -> 2, the two 2s share 3 and 4 -> 3.5,
    # 1 -> 5.
    "b": [3.0, 1.0, 2.0, 2.0, 5.0],
    # higher is better. The two nan share ranks 1 and 2 -> 1.5; the three 7s share 3, 4, 5 -> 4.
    "c": [NAN, NAN, 7.0, 7.0, 7.0],
}
DIRECTIONS = {"a": 1, "b": -1, "c": 1}
RANKS = {
    "a": [3.0, 4.5, 4.5, 1.0, 2.0],
    "b": [2.0, 5.0, 3.5, 3.5, 1.0],
    "c": [1.5, 1.5, 4.0, 4.0, 4.0],
}


def test_ranks_by_hand():
    for name, expected in RANKS.items():
        assert rank_best_highest(COLUMNS[name], DIRECTIONS[name]).tolist() == expected


def test_sum_of_ranks_by_hand():
    # 3 + 2 + 1.5, 4.5 + 5 + 1.5, 4.5 + 3.5 + 4, 1 + 3.5 + 4, 2 + 1 + 4
    expected = [6.5, 11.0, 12.0, 8.5, 7.0]
    assert sum_of_ranks(COLUMNS, DIRECTIONS).tolist() == expected
    # the same with aligned sequences
    assert sum_of_ranks(list(COLUMNS.values()), [1, -1, 1]).tolist() == expected


def test_sum_of_log_ranks_by_hand():
    n = 5
    expected = [
        math.log(3 / n) + math.log(2 / n) + math.log(1.5 / n),
        math.log(4.5 / n) + math.log(5 / n) + math.log(1.5 / n),
        math.log(4.5 / n) + math.log(3.5 / n) + math.log(4 / n),
        math.log(1 / n) + math.log(3.5 / n) + math.log(4 / n),
        math.log(2 / n) + math.log(1 / n) + math.log(4 / n),
    ]
    out = sum_of_log_ranks(COLUMNS, DIRECTIONS)
    assert out == pytest.approx(expected)
    assert int(np.argmax(out)) == 2  # never ranked low


def test_sum_of_log_ranks_with_three_candidates():
    # N = 3. x = (30, 10, 20) ranks (3, 1, 2); y = (1, 2, 3) ranks (1, 2, 3).
    #   candidate 0: ranks 3, 1 -> sum 4, log(3/3) + log(1/3)
    #   candidate 1: ranks 1, 2 -> sum 3, log(1/3) + log(2/3)
    #   candidate 2: ranks 2, 3 -> sum 5, log(2/3) + log(3/3)
    columns = {"x": [30.0, 10.0, 20.0], "y": [1.0, 2.0, 3.0]}
    assert sum_of_ranks(columns).tolist() == [4.0, 3.0, 5.0]
    assert sum_of_log_ranks(columns) == pytest.approx(
        [math.log(1 / 3), math.log(1 / 3) + math.log(2 / 3), math.log(2 / 3)]
    )


def test_a_single_best_candidate_scores_zero_log_rank():
    assert sum_of_log_ranks({"x": [1.0, 9.0]}).tolist() == [math.log(1 / 2), 0.0]


def test_bad_inputs_are_rejected():
    with pytest.raises(KeyError, match="b"):
        sum_of_ranks({"a": [1.0], "b": [2.0]}, {"a": 1})
    with pytest.raises(ValueError, match="different numbers"):
        sum_of_ranks([[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError, match="direction"):
        rank_best_highest([1.0, 2.0], direction=0)
    with pytest.raises(ValueError, match="no signal"):
        sum_of_ranks([])
