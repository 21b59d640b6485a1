"""CIFAR ResNets: ``resnet20`` (He et al. 2016, 3 stages of 16/32/64 channels) and
``resnet18``/``resnet50`` (the ImageNet block layout with a 3x3 stem for 32x32 inputs).

Two inits: PyTorch's default (``init='torch'``) and the one of the CIFAR ResNets Chowers & Weiss
(ICML 2023) train (chenyaofo/pytorch-cifar-models): ``init='kaiming_fan_out'``, convs kaiming-normal
(fan_out, ReLU), BatchNorm 1 / 0, the final linear layer left at PyTorch's default.
"""
from torch import nn
from torch.nn import functional as F

from bench.errors import ModelError
from bench.models.registry import register_model, scaled

INITS = ("torch", "kaiming_fan_out")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block, depths: list[int], widths: list[int], num_classes: int, in_chans: int,
                 init: str = "torch") -> None:
        super().__init__()
        if init not in INITS:
            raise ModelError(f"resnet init must be one of {', '.join(INITS)}, not {init!r}")
        self.first_conv = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        stages, cin = [], widths[0]
        for i, (depth, planes) in enumerate(zip(depths, widths)):
            for j in range(depth):
                blk = block(cin, planes, 2 if (i > 0 and j == 0) else 1)
                stages.append(blk)
                cin = planes * block.expansion
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)
        if init == "kaiming_fan_out":
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        out = self.stages(F.relu(self.bn(self.first_conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model
def resnet20(num_classes=10, in_chans=3, width=1.0, weights=None, init="torch"):
    return ResNet(BasicBlock, [3, 3, 3], [scaled(c, width) for c in (16, 32, 64)], num_classes, in_chans, init)


@register_model
def resnet18(num_classes=10, in_chans=3, width=1.0, weights=None, init="torch"):
    return ResNet(BasicBlock, [2, 2, 2, 2], [scaled(c, width) for c in (64, 128, 256, 512)], num_classes, in_chans, init)


@register_model
def resnet50(num_classes=10, in_chans=3, width=1.0, weights=None, init="torch"):
    return ResNet(Bottleneck, [3, 4, 6, 3], [scaled(c, width) for c in (64, 128, 256, 512)], num_classes, in_chans, init)
