"""The CIFAR-10 CNN of PyPI ``cifar-10-model`` 7.4.0 (a Keras model), rebuilt in torch: ``keras_cifar_cnn``.

Architecture (the package's ``model.py``): three blocks of two 'valid' 3x3 convs (64, 64 | 128, 128 |
64, 64), each conv followed by ReLU then BatchNorm (Keras eps 1e-3), 2x2 max-pools after the first two
blocks; flatten (1x1x64 on 32x32 inputs) -> Dense 1024 -> Dense 512 -> Dense 10 (ReLU on every dense
layer, dropout 0.2). It was trained on raw pixels (0-255, Keras' CIFAR-10 as loaded, no
normalisation). ``weights``: the package's ``cnn_model.h5`` (Keras HDF5, read with h5py: kernels HWIO ->
OIHW, dense kernels transposed).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bench.errors import ModelError
from bench.models.registry import register_model

INPUT = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "image_size": 32, "pixel_scale": 255.0}
_CONVS = (64, 64, 128, 128, 64, 64)


class KerasCifar10CNN(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for i, out in enumerate(_CONVS):
            layers += [nn.Conv2d(c, out, 3), nn.ReLU(), nn.BatchNorm2d(out, eps=1e-3)]
            if i in (1, 3):
                layers.append(nn.MaxPool2d(2, 2))
            c = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 1024), nn.ReLU(), nn.Dropout(0.2),
                                        nn.Linear(1024, 512), nn.ReLU(), nn.Dropout(0.2),
                                        nn.Linear(512, num_classes), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def load_keras_h5(model: KerasCifar10CNN, path: Path) -> None:
    """Copy the Keras layers (``conv2d``, ``conv2d_1``, ..., ``batch_normalization*``, ``dense*``) into ``model``."""
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as e:
        raise ModelError(f"cannot read weights {path} as Keras HDF5: {e}") from None
    with h5:
        root = h5["model_weights"] if "model_weights" in h5 else h5

        def arrays(layer: str, *names: str) -> list[torch.Tensor]:
            if layer not in root:
                raise ModelError(f"weights {path} have no Keras layer {layer!r}: not the cifar-10-model CNN")
            group = root[layer][layer]
            return [torch.from_numpy(group[f"{n}:0"][()]) for n in names]

        convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
        norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
        denses = [m for m in model.classifier if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for i, conv in enumerate(convs):
                kernel, bias = arrays("conv2d" + (f"_{i}" if i else ""), "kernel", "bias")
                if kernel.permute(3, 2, 0, 1).shape != conv.weight.shape:
                    raise ModelError(f"weights {path}: conv {i} is {tuple(kernel.shape)} (HWIO), not this model's")
                conv.weight.copy_(kernel.permute(3, 2, 0, 1))
                conv.bias.copy_(bias)
            for i, bn in enumerate(norms):
                gamma, beta, mean, var = arrays("batch_normalization" + (f"_{i}" if i else ""),
                                                "gamma", "beta", "moving_mean", "moving_variance")
                for p, v in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), (gamma, beta, mean, var)):
                    p.copy_(v)
            for i, dense in enumerate(denses):
                kernel, bias = arrays("dense" + (f"_{i}" if i else ""), "kernel", "bias")
                if kernel.T.shape != dense.weight.shape:
                    raise ModelError(f"weights {path}: dense {i} is {tuple(kernel.shape)}, not this model's")
                dense.weight.copy_(kernel.T)
                dense.bias.copy_(bias)
    model.weights_loaded = True


@register_model
def keras_cifar_cnn(num_classes=10, in_chans=3, width=1.0, weights=None):
    """The cifar-10-model CNN; ``weights``: its Keras ``.h5`` (or a torch state dict of this module)."""
    if in_chans != 3 or width != 1.0:
        raise ModelError("keras_cifar_cnn is a fixed CIFAR-10 architecture: in_chans=3 and width=1.0 only")
    model = KerasCifar10CNN(num_classes)
    model.input_cfg = dict(INPUT)
    if weights is not None and str(weights).endswith(".h5"):
        path = Path(weights)
        if not path.is_file():
            raise ModelError(f"weights file {path} does not exist; run scripts/assets/pretrained_weights.sh "
                             f"(make assets) or pass model.weights=<the cifar-10-model cnn_model.h5>")
        load_keras_h5(model, path)
    return model
