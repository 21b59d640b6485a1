"""CIFAR-style VGG (3x3 convs, 32x32 inputs, one linear classifier), with a width multiplier."""
from torch import nn

from bench.models.registry import register_model, scaled

_CFGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    def __init__(self, depth: int, num_classes: int, in_chans: int, width: float, batch_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_chans
        for v in _CFGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))  # 28x28 inputs keep a 1x1 map
                continue
            out = scaled(v, width)
            layers.append(nn.Conv2d(c, out, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            c = out
        self.features = nn.Sequential(*layers)
        # Global pooling keeps the classifier valid for any input size (28x28 MNIST included).
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model
def vgg11(num_classes=10, in_chans=3, width=1.0, weights=None):
    return VGG(11, num_classes, in_chans, width, batch_norm=False)


@register_model
def vgg11_bn(num_classes=10, in_chans=3, width=1.0, weights=None):
    return VGG(11, num_classes, in_chans, width, batch_norm=True)


@register_model
def vgg16_bn(num_classes=10, in_chans=3, width=1.0, weights=None):
    return VGG(16, num_classes, in_chans, width, batch_norm=True)


@register_model
def vgg19_bn(num_classes=10, in_chans=3, width=1.0, weights=None):
    return VGG(19, num_classes, in_chans, width, batch_norm=True)
