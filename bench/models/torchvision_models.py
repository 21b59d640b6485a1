"""ImageNet models from torchvision, by name: ``tv_resnet18``, ``tv_vgg11``, ``tv_densenet121``, ...

Their first layers are the 7x7 (ResNet/DenseNet) and 3x3 (VGG/MobileNet/ShuffleNet) filter
banks studied by Chowers & Weiss (ICML 2023). ``weights='torchvision'`` loads the library's pretrained weights
from the local torch hub cache (offline, a missing file is a clear error naming where to put
it); a path loads a local state dict.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bench.errors import ModelError
from bench.models.registry import load_weights, register_model

_ARCHS = ["resnet18", "resnet50", "vgg11", "vgg16", "densenet121", "mobilenet_v2", "shufflenet_v2_x1_0"]


def _torchvision_weights(model: nn.Module, arch: str) -> None:
    """Load torchvision's default ImageNet weights from the hub cache without touching the network."""
    import torchvision

    enum = torchvision.models.get_model_weights(arch).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    if not cached.is_file():
        raise ModelError(f"torchvision weights for {arch} are not cached at {cached} and this machine is offline; "
                         f"download {enum.url} there, or pass model.weights=<local state dict>")
    model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    model.weights_loaded = True


def _weights_enum(arch: str, weights: str | None):
    """The torchvision weights a file is (matched by its file name, e.g. mobilenet_v2-b0353104.pth is
    IMAGENET1K_V1), else the library's default: their transforms are how the model expects its inputs."""
    import torchvision

    members = list(torchvision.models.get_model_weights(arch))
    name = Path(str(weights)).name
    return next((m for m in members if Path(m.url).name == name), torchvision.models.get_model_weights(arch).DEFAULT)


def _make(arch: str):
    def build(num_classes=1000, in_chans=3, width=1.0, weights=None):
        if in_chans != 3 or width != 1.0:
            raise ModelError(f"tv_{arch} is a fixed ImageNet architecture: in_chans=3 and width=1.0 only")
        import torchvision  # here, not at the top: it costs 2.5 s, and `bench` checks model names before that

        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        # how the pretrained weights expect their inputs (a task measuring them on images uses the same)
        tf = _weights_enum(arch, weights).transforms()
        model.input_cfg = {"mean": tuple(tf.mean), "std": tuple(tf.std), "image_size": tf.crop_size[0],
                           "resize": tf.resize_size[0], "pixel_scale": 1.0}
        if weights == "torchvision":
            _torchvision_weights(model, arch)
        elif weights is not None:
            load_weights(model, weights)
        return model

    build.__name__ = f"tv_{arch}"
    build.__doc__ = f"torchvision's {arch} (ImageNet layout)."
    return register_model(build)


for _arch in _ARCHS:
    _make(_arch)
