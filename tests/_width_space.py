"""A search space that is not NAS-Bench-201, for the recipes' ``class_path``: MLP widths."""

from __future__ import annotations

from torch import nn

from lga_lightning.search.spaces.base import as_rng

WIDTHS = (8, 16, 32, 64)


class WidthSpace:
    """One hidden layer of 8, 16, 32 or 64 units on 8 x 8 images; an architecture is its width."""

    size = len(WIDTHS)

    def sample(self, rng=None) -> int:
        return as_rng(rng).choice(WIDTHS)

    def mutate(self, arch: int, rng=None) -> int:
        return as_rng(rng).choice([w for w in WIDTHS if w != arch])

    def build(self, arch: int, num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
        return nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * 64, arch), nn.ReLU(), nn.Linear(arch, num_classes)
        )

    def encode(self, arch: int) -> str:
        return str(arch)

    def decode(self, text: str) -> int:
        if not text.isdigit() or int(text) not in WIDTHS:
            raise ValueError(f"{text!r} is not one of the widths {WIDTHS}")
        return int(text)

    def canonical(self, arch: int) -> str:
        return self.encode(arch)

    def enumerate(self):
        return iter(WIDTHS)
