"""CIFAR DenseNet-BC (Huang et al. 2017): 3 dense blocks of bottleneck layers, compression 0.5.
``densenet`` is DenseNet-BC-100 with growth rate 12; ``width`` scales the growth rate."""
import torch
from torch import nn
from torch.nn import functional as F

from bench.models.registry import register_model, scaled


class Bottleneck(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


def _transition(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1, bias=False),
                         nn.AvgPool2d(2))


class DenseNet(nn.Module):
    def __init__(self, depth: int, growth: int, num_classes: int, in_chans: int, reduction: float = 0.5) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"DenseNet-BC depth must be 6n + 4, not {depth}")
        n = (depth - 4) // 6
        c = 2 * growth
        self.first_conv = nn.Conv2d(in_chans, c, 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        for block in range(3):
            for _ in range(n):
                layers.append(Bottleneck(c, growth))
                c += growth
            if block < 2:
                cout = int(c * reduction)
                layers.append(_transition(c, cout))
                c = cout
        self.features = nn.Sequential(*layers, nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.features(self.first_conv(x)), 1).flatten(1))


@register_model
def densenet(num_classes=10, in_chans=3, width=1.0, weights=None, depth=100, growth=12):
    """DenseNet-BC-``depth`` with growth rate ``growth * width``."""
    return DenseNet(depth, scaled(growth, width), num_classes, in_chans)
