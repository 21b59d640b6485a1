"""Shake-Shake (Gastaldi 2017) for CIFAR, one of the paper's classifiers: ``shake_shake26`` is
Shake-Shake-26 2x32d (``base_width=96`` for 2x96d): 3 stages of 4 residual blocks, each the
sum of two ReLU-conv-BN-ReLU-conv-BN branches mixed with a random per-image weight alpha in the
forward pass and an independent beta in the backward pass ("Shake-Shake-Image"); 0.5 each at
evaluation. Downsampling shortcuts are the paper's: two 1x1 convolutions on average-pooled
inputs, the second shifted by one pixel, concatenated."""
import torch
from torch import nn
from torch.nn import functional as F

from bench.models.registry import register_model, scaled


class _Shake(torch.autograd.Function):
    """``alpha a + (1 - alpha) b`` forward; gradients weighted by an independent beta backward."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        alpha = torch.rand(len(a), 1, 1, 1, device=a.device, dtype=a.dtype)
        return alpha * a + (1 - alpha) * b

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        beta = torch.rand(len(grad), 1, 1, 1, device=grad.device, dtype=grad.dtype)
        return beta * grad, (1 - beta) * grad


def _branch(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))


class _Shortcut(nn.Module):
    """The paper's downsampling shortcut: ReLU, then two average-pooled 1x1 paths (one shifted by a pixel)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(cin, cout - cout // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        a = self.conv1(F.avg_pool2d(x, 1, self.stride))
        b = self.conv2(F.avg_pool2d(F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)), 1, self.stride))
        return self.bn(torch.cat([a, b], 1))


class ShakeBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.branch1, self.branch2 = _branch(cin, cout, stride), _branch(cin, cout, stride)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else _Shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.branch1(x), self.branch2(x)
        mixed = _Shake.apply(a, b) if self.training else 0.5 * (a + b)
        return self.shortcut(x) + mixed


class ShakeShake(nn.Module):
    def __init__(self, depth: int, base_width: int, num_classes: int, in_chans: int) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"Shake-Shake depth must be 6n + 2, not {depth}")
        n = (depth - 2) // 6
        self.first_conv = nn.Conv2d(in_chans, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage in range(3):
            cout = base_width * 2 ** stage
            for i in range(n):
                blocks.append(ShakeBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.stages(self.bn(self.first_conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model
def shake_shake26(num_classes=10, in_chans=3, width=1.0, weights=None, base_width=32):
    """Shake-Shake-26 2x(``base_width * width``)d."""
    return ShakeShake(26, scaled(base_width, width), num_classes, in_chans)
