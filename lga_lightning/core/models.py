"""Small reference networks for the recipes: a CIFAR-style ResNet and a plain CNN.

Any ``torch.nn.Module`` works with :class:`~lga_lightning.training.module.ClassificationModule` and
``NTKMetrics``; these two exist so the configs in ``configs/`` need no user code.
"""

from __future__ import annotations

from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut, as in ResNet.

    Args:
        c_in: input channels.
        c_out: output channels.
        stride: stride of the first convolution (2 halves the spatial size).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``."""
        # nn.Module.__call__ is typed as returning Any; these layers return tensors.
        out: Tensor = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + self.shortcut(x))
        return result


class ResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016, section 4.2): ``6 * blocks + 2`` layers.

    A 3x3 stem, three stages of ``blocks`` basic blocks with ``width``, ``2 * width`` and
    ``4 * width`` channels (the last two start with stride 2), global average pooling and a linear
    ``classifier``. ``blocks=3, width=16`` is ResNet-20 (0.27 M parameters on CIFAR-10).

    Args:
        num_classes: outputs of the classifier.
        blocks: basic blocks per stage.
        width: channels of the first stage.
        in_channels: image channels.

    Example:
        >>> import torch
        >>> net = ResNet(num_classes=10)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> sum(p.numel() for p in net.parameters())
        272474
    """

    def __init__(
        self, num_classes: int = 10, blocks: int = 3, width: int = 16, in_channels: int = 3
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("blocks", blocks), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        c_in = width
        for stage in range(3):
            c_out = width * 2**stage
            for i in range(blocks):
                layers.append(BasicBlock(c_in, c_out, stride=2 if stage > 0 and i == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, num_classes)``."""
        logits: Tensor = self.classifier(self.pool(self.layers(self.stem(x))).flatten(1))
        return logits


class SmallCNN(nn.Module):
    """Two conv-BN-ReLU layers, global pooling and a linear classifier: a seconds-fast baseline.

    Args:
        num_classes: outputs of the classifier.
        width: channels of both convolutions.
        in_channels: image channels.

    Example:
        >>> import torch
        >>> SmallCNN(num_classes=10, in_channels=1)(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, num_classes)``."""
        logits: Tensor = self.classifier(self.features(x))
        return logits
