"""The generator interface: any deterministic decoder ``G(z, y)`` from a latent and a class
label to an image in [0, 1]. Shift families act on flattened latents; :meth:`Generator.decode`
takes them flat or in the generator's own latent shape."""
from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod

import torch
from torch import nn

from bench.provenance import update_with_tensors


class Generator(ABC):
    """A fixed class-conditional decoder. Subclasses set the attributes and ``_decode``."""

    #: short identifier (kind and configuration), recorded in dataset manifests
    id: str
    #: sha256 of the weights, so a dataset names exactly which generator made it
    weights_hash: str
    latent_shape: tuple[int, ...]
    image_shape: tuple[int, int, int]
    num_classes: int
    device: torch.device = torch.device("cpu")
    #: how :func:`bench.shift.dataset.to_uint8` stores its images: ``round`` or ``floor``
    quantize: str = "round"

    @property
    def latent_dim(self) -> int:
        """The dimension ``d`` the shift families act in."""
        return math.prod(self.latent_shape)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] on the CPU, a deterministic function of ``z`` and ``y``."""
        if z.shape[0] != y.shape[0]:
            raise ValueError(f"{z.shape[0]} latents but {y.shape[0]} labels")
        if z[0].numel() != self.latent_dim:
            raise ValueError(f"latents of size {z[0].numel()} do not fit {self.id} (latent shape {self.latent_shape})")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes})")
        z = z.reshape(len(z), *self.latent_shape).to(self.device, torch.float32)
        images = self._decode(z, y.to(self.device, torch.long))
        return images.float().clamp(0.0, 1.0).cpu()

    @abstractmethod
    def _decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Decode latents in ``latent_shape`` with labels; return images roughly in [0, 1]."""

    def describe(self) -> dict:
        """What a manifest records about this generator."""
        return {"id": self.id, "weights_hash": self.weights_hash, "latent_shape": list(self.latent_shape),
                "image_shape": list(self.image_shape), "num_classes": self.num_classes}


def weights_hash(*modules: nn.Module) -> str:
    """sha256 over every tensor of the modules' state dicts (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for module in modules:
        update_with_tensors(h, module.state_dict())
    return h.hexdigest()
