"""CIFAR-style VGG (3x3 convs, 32x32 inputs), with a width multiplier.

Two heads and two inits: bench's default (``head='linear'``: one linear layer on the pooled features;
PyTorch's default init) and Chowers & Weiss's (ICML 2023: the CIFAR VGGs of
chenyaofo/pytorch-cifar-models): ``head='mlp'``, Linear(512, 512) -> ReLU -> Dropout(0.5) -> Linear(512,
512) -> ReLU -> Dropout(0.5) -> Linear(512, classes) (512 wide whatever ``width``), and
``init='kaiming_fan_out'``: convs kaiming-normal (fan_out, ReLU) with zero bias, BatchNorm 1 / 0, linear
layers N(0, 0.01) with zero bias.
"""
from torch import nn

from bench.errors import ModelError
from bench.models.registry import register_model, scaled

_CFGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
HEADS, INITS = ("linear", "mlp"), ("torch", "kaiming_fan_out")


class VGG(nn.Module):
    def __init__(self, depth: int, num_classes: int, in_chans: int, width: float, batch_norm: bool,
                 head: str = "linear", init: str = "torch") -> None:
        super().__init__()
        if head not in HEADS or init not in INITS:
            raise ModelError(f"vgg head must be one of {', '.join(HEADS)} and init one of {', '.join(INITS)}, "
                             f"not head={head!r}, init={init!r}")
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
        if head == "linear":
            self.classifier = nn.Linear(c, num_classes)
        else:
            hidden = 512  # the authors' head is 512 wide whatever the features' width
            self.classifier = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(True), nn.Dropout(),
                                            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
                                            nn.Linear(hidden, num_classes))
        if init == "kaiming_fan_out":
            self._init_as_the_authors()

    def _init_as_the_authors(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model
def vgg11(num_classes=10, in_chans=3, width=1.0, weights=None, head="linear", init="torch"):
    return VGG(11, num_classes, in_chans, width, batch_norm=False, head=head, init=init)


@register_model
def vgg11_bn(num_classes=10, in_chans=3, width=1.0, weights=None, head="linear", init="torch"):
    return VGG(11, num_classes, in_chans, width, batch_norm=True, head=head, init=init)


@register_model
def vgg16_bn(num_classes=10, in_chans=3, width=1.0, weights=None, head="linear", init="torch"):
    return VGG(16, num_classes, in_chans, width, batch_norm=True, head=head, init=init)


@register_model
def vgg19_bn(num_classes=10, in_chans=3, width=1.0, weights=None, head="linear", init="torch"):
    return VGG(19, num_classes, in_chans, width, batch_norm=True, head=head, init=init)
