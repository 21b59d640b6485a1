"""The paper's theory model: one convolution -> global average pool -> linear head.

With ``head='sum'`` the output is the sum over filters (the analytical model of the
first-layer paper, Chowers & Weiss 2023, trained with MSE); ``head='linear'`` is the usual classifier form;
``head='none'`` makes each filter's pooled response one output (one filter per class): trained with MSE
on one-hot targets every filter follows the theory's dynamics for its own target, so the bank's energy
profile averages the formula over ``num_classes`` label draws, as the theory's expectation does.
"""
from torch import nn

from bench.errors import ModelError
from bench.models.registry import register_model, scaled


class LinearCNN(nn.Module):
    def __init__(self, num_classes: int, in_chans: int, filters: int, kernel_size: int, head: str) -> None:
        super().__init__()
        self.first_conv = nn.Conv2d(in_chans, filters, kernel_size, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        if head not in ("linear", "sum", "none"):
            raise ModelError(f"linear_cnn head must be 'linear', 'sum' or 'none', not {head!r}")
        if head == "none" and filters != num_classes:
            raise ModelError(f"linear_cnn head='none' has one filter per class: {filters} filters for "
                             f"{num_classes} classes (set filters={num_classes}, width=1)")
        self.head = nn.Linear(filters, num_classes) if head == "linear" else None
        self.head_kind = head

    def forward(self, x):
        h = self.pool(self.first_conv(x)).flatten(1)
        if self.head_kind == "linear":
            return self.head(h)
        return h.sum(1, keepdim=True) if self.head_kind == "sum" else h


@register_model
def linear_cnn(num_classes=10, in_chans=3, width=1.0, weights=None, kernel_size=3, filters=64, head="linear"):
    """conv(k x k, 64*width filters, no bias) -> global average pool -> linear (or sum, or none)."""
    return LinearCNN(num_classes, in_chans, scaled(filters, width), kernel_size, head)
