"""Pre-activation ResNet-18 for 32x32 inputs (He et al. 2016, "Identity mappings"):
BN-ReLU before each convolution; ``width`` scales the 64/128/256/512 channels."""
from torch import nn
from torch.nn import functional as F

from bench.models.registry import register_model, scaled


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        return self.conv2(F.relu(self.bn2(out))) + skip


class PreActResNet(nn.Module):
    def __init__(self, depths: list[int], widths: list[int], num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.first_conv = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        blocks, cin = [], widths[0]
        for i, (depth, cout) in enumerate(zip(depths, widths)):
            for j in range(depth):
                blocks.append(PreActBlock(cin, cout, 2 if i > 0 and j == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = F.relu(self.bn(self.stages(self.first_conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model
def preact_resnet(num_classes=10, in_chans=3, width=1.0, weights=None):
    """PreAct-ResNet-18."""
    return PreActResNet([2, 2, 2, 2], [scaled(c, width) for c in (64, 128, 256, 512)], num_classes, in_chans)
