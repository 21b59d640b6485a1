"""CIFAR ResNeXt (Xie et al. 2017): ``resnext`` is ResNeXt-29 (8x64d), three stages of
grouped-convolution bottlenecks; ``width`` scales the per-group bottleneck width."""
from torch import nn
from torch.nn import functional as F

from bench.models.registry import register_model, scaled


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, cardinality: int, group_width: int) -> None:
        super().__init__()
        inner = cardinality * group_width
        self.body = nn.Sequential(
            nn.Conv2d(cin, inner, 1, bias=False), nn.BatchNorm2d(inner), nn.ReLU(inplace=True),
            nn.Conv2d(inner, inner, 3, stride, 1, groups=cardinality, bias=False), nn.BatchNorm2d(inner),
            nn.ReLU(inplace=True), nn.Conv2d(inner, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class ResNeXt(nn.Module):
    def __init__(self, depth: int, cardinality: int, group_width: int, num_classes: int, in_chans: int) -> None:
        super().__init__()
        if (depth - 2) % 9:
            raise ValueError(f"CIFAR ResNeXt depth must be 9n + 2, not {depth}")
        n = (depth - 2) // 9
        stem = scaled(64, group_width / 64)
        self.first_conv = nn.Conv2d(in_chans, stem, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(stem)
        blocks, cin = [], stem
        for stage in range(3):
            gw = group_width * 2 ** stage
            cout = 4 * gw  # the paper's 256/512/1024 outputs at 8x64d, scaled with the group width
            for i in range(n):
                blocks.append(Block(cin, cout, 2 if stage > 0 and i == 0 else 1, cardinality, gw))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = self.stages(F.relu(self.bn(self.first_conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model
def resnext(num_classes=10, in_chans=3, width=1.0, weights=None, depth=29, cardinality=8, group_width=64):
    """ResNeXt-``depth`` (``cardinality`` x ``group_width * width``d)."""
    return ResNeXt(depth, cardinality, scaled(group_width, width), num_classes, in_chans)
