"""MLP-Mixer (Tolstikhin et al. 2021) for small images, built on timm's ``MlpMixer``.

The token-mixing MLP fixes the number of patches, so the model is built for ``img_size``
(32) and zero-pads smaller inputs to it (28x28 MNIST gets LeNet's 2-pixel border).
``width`` scales the embedding dimension (256 at width 1: 8 blocks, 4x4 patches)."""
import torch
from torch import nn
from torch.nn import functional as F

from bench.errors import ModelError
from bench.models.registry import register_model, scaled


class PadTo(nn.Module):
    """Centre-pad inputs smaller than ``size`` with zeros; refuse larger ones."""

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__()
        self.model, self.size = model, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h > self.size or w > self.size:
            raise ModelError(f"input {h}x{w} is larger than this model's img_size={self.size}; "
                             f"set model.kwargs.img_size={max(h, w)}")
        if (h, w) != (self.size, self.size):
            top, left = (self.size - h) // 2, (self.size - w) // 2
            x = F.pad(x, (left, self.size - w - left, top, self.size - h - top))
        return self.model(x)


@register_model
def mlp_mixer(num_classes=10, in_chans=3, width=1.0, weights=None, img_size=32, patch_size=4, num_blocks=8):
    """A CIFAR-sized MLP-Mixer: 4x4 patches, ``num_blocks`` blocks, embedding 256 * width."""
    from timm.models.mlp_mixer import MlpMixer  # here: timm (and torchvision) cost ~3 s to import

    mixer = MlpMixer(num_classes=num_classes, img_size=img_size, in_chans=in_chans, patch_size=patch_size,
                     num_blocks=num_blocks, embed_dim=scaled(256, width), mlp_ratio=(0.5, 4.0))
    return PadTo(mixer, img_size)
