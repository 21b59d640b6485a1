"""The paper's generator: an EDM network pickle (Karras et al. 2022) sampled by bench's own
deterministic EDM sampler, so ``G(z, y)`` is the map the Control+Shift reference computes.

A network pickle is a pickled dict whose ``ema`` entry is the preconditioned denoiser
``D(x; sigma, class_labels)``: it exposes ``img_resolution``, ``img_channels``, ``label_dim``,
``sigma_min``, ``sigma_max`` and ``round_sigma(sigma)`` and is called as ``net(x, sigma,
class_labels)`` with one-hot labels ``[N, label_dim]``. Unpickling imports the EDM source tree's
``torch_utils``/``dnnlib`` packages: ``generator.edm_src`` names that tree (it is on
``sys.path`` only while unpickling), or it must already be importable.

The sampler is Algorithm 1 of Karras et al. with ``S_churn = 0`` (no noise is added), in one of
two published variants (``generator.sampler``):

- ``ctrl_shift``: the Control+Shift reference's own ``edm_sample`` (its ``sampling.py``), which made
  the paper's datasets: the state in float32, the schedule unrounded and ending at sigma = 1e-5
  instead of 0, only the current level rounded with ``round_sigma``, images stored by flooring
  (``(x * 0.5 + 0.5).clamp(0, 1) * 255`` cast to uint8);
- ``heun`` / ``euler``: NVlabs' ``generate.py`` ``edm_sampler``: the schedule rounded with
  ``round_sigma`` and ending at 0, the state in float64 (``fp64``), images rounded to the nearest level.

Both clip the schedule to the network's sigma range, start from ``x_0 = z * sigma_0`` and take an
Euler step with a Heun correction on every step but the last (``euler``: never). The noise levels
stay float64 in both, so a step ``(sigma_next - sigma_cur) * d`` is formed in float64 and cast to
the state's precision, as both references do.
"""
from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from bench.errors import ConfigError, ModelError
from bench.shift.config import GeneratorConfig
from bench.device import resolve_device
from bench.shift.generators.base import Generator, weights_hash

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
EDM_SAMPLERS = ("ctrl_shift", "heun", "euler")
#: the Control+Shift sampler's last noise level (NVlabs': 0)
CTRL_SHIFT_LAST_SIGMA = 1e-5


def edm_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               round_sigma: Callable[[torch.Tensor], torch.Tensor] | None = None, last: float = 0.0) -> torch.Tensor:
    """The ``steps + 1`` noise levels (float64) of EDM's schedule:
    ``sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``, then ``last``."""
    if steps < 2:
        raise ConfigError(f"generator.steps must be at least 2 for the EDM sampler, not {steps}")
    if not 0 < sigma_min < sigma_max:
        raise ConfigError(f"the EDM schedule needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    i = torch.arange(steps, dtype=torch.float64)
    sigmas = (sigma_max ** (1 / rho) + i / (steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    if round_sigma is not None:
        sigmas = torch.as_tensor(round_sigma(sigmas), dtype=torch.float64)
    return torch.cat([sigmas, sigmas.new_full((1,), last)])


@torch.no_grad()
def edm_sample(denoise: Denoiser, z: torch.Tensor, sigmas: torch.Tensor, heun: bool = True,
               dtype: torch.dtype = torch.float64,
               round_sigma: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Integrate the probability-flow ODE ``dx/dsigma = (x - D(x; sigma)) / sigma`` from
    ``x_0 = z * sigmas[0]`` down the schedule ``sigmas``; returns ``x`` at its last level.

    ``denoise(x, sigma)`` is ``D``; with ``heun`` every step but the last (to sigma ~ 0, where the
    ODE's slope is undefined) gets the trapezoidal correction. ``dtype`` is the state's precision;
    the levels stay float64 (0-dim tensors), so each step's size is formed in float64 and then cast.
    ``round_sigma`` rounds the level each step starts from (both references do; a no-op for EDM's
    own networks)."""
    sigmas = sigmas.to(z.device, torch.float64)
    x = z.to(dtype) * sigmas[0]
    last = len(sigmas) - 2
    for i, (s_cur, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        if round_sigma is not None:
            s_cur = torch.as_tensor(round_sigma(s_cur))
        d_cur = (x - denoise(x, s_cur).to(dtype)) / s_cur
        x_next = x + (s_next - s_cur) * d_cur
        if heun and i < last:
            d_next = (x_next - denoise(x_next, s_next).to(dtype)) / s_next
            x_next = x + (s_next - s_cur) * (0.5 * d_cur + 0.5 * d_next)
        x = x_next
    return x


class EDMPrecond(nn.Module):
    """EDM's preconditioning (Karras et al. 2022, Table 1: VP/VE-agnostic ``EDMPrecond``) around a raw
    network ``model(c_in x, c_noise, class_labels)``: ``D(x; sigma) = c_skip x + c_out F``, with the
    interface of an NVlabs pickle's ``ema`` network, so a network of one's own runs under
    ``EDMGenerator`` (the benchmarks and tests use it). Computes in float32, as EDM does."""

    def __init__(self, model: nn.Module, img_resolution: int, img_channels: int, label_dim: int,
                 sigma_data: float = 0.5) -> None:
        super().__init__()
        self.model, self.sigma_data = model, sigma_data
        self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
        self.sigma_min, self.sigma_max = 0.0, float("inf")

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(torch.float32)
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1, 1, 1, 1)
        sd = self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        c_noise = (sigma.log() / 4).flatten().expand(len(x))
        return c_skip * x + c_out * self.model(c_in * x, c_noise, class_labels).to(torch.float32)

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)


@contextmanager
def _importable(src: str | None) -> Iterator[None]:
    """``src`` on ``sys.path`` for the duration of the block only (the modules it imports stay loaded)."""
    if src is None:
        yield
        return
    if not Path(src, "torch_utils").is_dir() and not Path(src, "dnnlib").is_dir():
        raise ConfigError(f"generator.edm_src={src} holds no torch_utils/ or dnnlib/ package: point it at a "
                          "checkout of the EDM source tree (github.com/NVlabs/edm)")
    sys.path.insert(0, str(src))
    try:
        yield
    finally:
        sys.path.remove(str(src))


def load_network_pickle(path: str | Path, edm_src: str | None = None) -> nn.Module:
    """The ``ema`` denoiser of an NVlabs EDM network pickle (a local file)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"generator.source={path} is not a file: pass a local EDM network pickle, e.g. "
                         "edm-cifar10-32x32-cond-vp.pkl (download it on a connected machine from "
                         "https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/)")
    with _importable(edm_src), open(path, "rb") as f:
        try:
            data = pickle.load(f)
        except ModuleNotFoundError as e:
            raise ModelError(f"unpickling {path.name} needs the EDM source tree ({e}); set "
                             "generator.edm_src=<checkout of github.com/NVlabs/edm>") from None
    net = data.get("ema") if isinstance(data, dict) else None
    if not isinstance(net, nn.Module):
        raise ModelError(f"{path} is not an EDM network pickle: expected a dict with an 'ema' network")
    missing = [a for a in ("img_resolution", "img_channels", "label_dim", "sigma_min", "sigma_max", "round_sigma")
               if not hasattr(net, a)]
    if missing:
        raise ModelError(f"the 'ema' network of {path.name} lacks {', '.join(missing)}: not an EDM preconditioned denoiser")
    return net


class EDMGenerator(Generator):
    """``G(z, y)``: the EDM sampler from noise ``z`` (C x H x W) with label ``y``; images in [0, 1].

    Labels ``0..K-1`` are the network's classes, or index ``generator.classes`` (e.g. the reference's
    10 ImageNet ids of the ImageNet-64 model)."""

    def __init__(self, net: nn.Module, cfg: GeneratorConfig, tag: str) -> None:
        if cfg.sampler not in EDM_SAMPLERS:
            raise ConfigError(f"generator=edm samples with bench's EDM sampler: generator.sampler must be one of "
                              f"{', '.join(EDM_SAMPLERS)}, not {cfg.sampler!r}")
        ctrl_shift = cfg.sampler == "ctrl_shift"
        if ctrl_shift and cfg.fp64:
            raise ConfigError("generator.sampler=ctrl_shift is the Control+Shift sampler, float32 by definition: "
                              "set generator.fp64=null (or pick generator.sampler=heun for NVlabs' float64 one)")
        label_dim = int(net.label_dim)
        if label_dim == 0:
            raise ModelError(f"the EDM network {tag} is unconditional (label_dim 0); the shift benchmark needs G(z, y)")
        classes = list(cfg.classes) if cfg.classes else list(range(label_dim))
        if any(not 0 <= c < label_dim for c in classes):
            raise ConfigError(f"generator.classes must be class ids of the network, in [0, {label_dim})")
        self.device = resolve_device(cfg.device, "generator.device")
        self.net = net.eval().requires_grad_(False).to(self.device)
        self.cfg, self.label_dim = cfg, label_dim
        self.class_ids = torch.tensor(classes, device=self.device)
        res, chans = int(net.img_resolution), int(net.img_channels)
        self.latent_shape = (chans, res, res)
        self.image_shape = (chans, res, res)
        self.num_classes = len(classes)
        self.weights_hash = weights_hash(net)
        # both references clip the requested schedule to the network's own sigma range; NVlabs rounds it
        # whole and ends at 0, Control+Shift leaves it unrounded and ends at 1e-5
        self.sigmas = edm_sigmas(cfg.steps, max(cfg.sigma_min, float(net.sigma_min)),
                                 min(cfg.sigma_max, float(net.sigma_max)), cfg.rho,
                                 None if ctrl_shift else net.round_sigma, CTRL_SHIFT_LAST_SIGMA if ctrl_shift else 0.0)
        self.dtype = torch.float32 if ctrl_shift or cfg.fp64 is False else torch.float64
        self.quantize = "floor" if ctrl_shift else "round"
        precision = "fp64" if self.dtype == torch.float64 else "fp32"
        self.id = f"edm-{tag}-{cfg.sampler}{cfg.steps}-{precision}"

    def _decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        one_hot = torch.eye(self.label_dim, device=self.device)[self.class_ids[y]]
        x = edm_sample(lambda x, sigma: self.net(x, sigma, one_hot), z, self.sigmas,
                       heun=self.cfg.sampler != "euler", dtype=self.dtype, round_sigma=self.net.round_sigma)
        return x.float() * 0.5 + 0.5  # EDM images live in [-1, 1]


def build_edm_generator(cfg: GeneratorConfig) -> EDMGenerator:
    """The ``generator=edm`` generator from the network pickle ``cfg.source``."""
    net = load_network_pickle(cfg.source, cfg.edm_src)
    return EDMGenerator(net, cfg, tag=Path(cfg.source).stem)
