"""The paper's theory model: one convolution -> global average pool -> linear head.

With ``head='sum'`` the output is the sum over filters (the analytical model of the
first-layer paper, Chowers & Weiss 2023, trained with MSE); ``head='linear'`` is the usual classifier form.
"""
from torch import nn

from bench.models.registry import register_model, scaled


class LinearCNN(nn.Module):
    def __init__(self, num_classes: int, in_chans: int, filters: int, kernel_size: int, head: str) -> None:
        super().__init__()
        self.first_conv = nn.Conv2d(in_chans, filters, kernel_size, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        if head not in ("linear", "sum"):
            raise ValueError(f"linear_cnn head must be 'linear' or 'sum', not {head!r}")
        self.head = nn.Linear(filters, num_classes) if head == "linear" else None

    def forward(self, x):
        h = self.pool(self.first_conv(x)).flatten(1)
        return self.head(h) if self.head is not None else h.sum(1, keepdim=True)


@register_model
def linear_cnn(num_classes=10, in_chans=3, width=1.0, weights=None, kernel_size=3, filters=64, head="linear"):
    """conv(k x k, 64*width filters, no bias) -> global average pool -> linear (or sum)."""
    return LinearCNN(num_classes, in_chans, scaled(filters, width), kernel_size, head)
