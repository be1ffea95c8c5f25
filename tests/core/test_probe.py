"""Drawing a fixed, class-balanced probe batch from a dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lga_lightning.core.probe import class_balanced_indices, probe_from_dataset


def test_probe_is_class_balanced_and_read_from_the_drawn_items():
    data = [(torch.full((2,), float(i)), i % 3) for i in range(30)]
    x, y = probe_from_dataset(data, size=9, seed=1)
    assert torch.bincount(y).tolist() == [3, 3, 3]
    assert all(int(xi[0]) % 3 == yi for xi, yi in zip(x, y.tolist(), strict=True))
    assert len(set(class_balanced_indices([i % 3 for i in range(30)], 9, seed=1))) == 9
    assert np.array_equal(
        class_balanced_indices(np.arange(30) % 3, 9, seed=1),
        class_balanced_indices([i % 3 for i in range(30)], 9, seed=1),
    )


def test_one_hot_labels_get_an_error_naming_batch_unpack():
    eye = torch.eye(3)
    data = [(torch.zeros(2), eye[i % 3]) for i in range(9)]
    with pytest.raises(ValueError, match=r"label of shape \(3,\).*batch_unpack"):
        probe_from_dataset(data, size=3)
    x, y = probe_from_dataset(data, size=3, batch_unpack=lambda item: (item[0], item[1].argmax()))
    assert sorted(y.tolist()) == [0, 1, 2]
