"""Latent shift families of Control+Shift (Friedman & Chowers 2024).

Every family moves only the distribution of the latent ``z`` fed to a fixed generator
``G(z, y)``; one geometric parameter sets the intensity. With ``eps ~ N(0, I_d)`` and
anchors ``a1, a2`` drawn once from a fixed seed:

- ``truncation``: ``z = R * eps`` (train R = 0.9);
- ``extend``:     ``z = slerp(a1, eps; t)`` (train t = 0.5; angle = pi (t - 0.5));
- ``overlap``:    ``z = slerp(slerp(a1, a2; s), eps; 0.5)`` (train s = 0; angle = pi s).

``extend`` and ``overlap`` share the anchor ``a1``, so their base distributions coincide
(``extend(0.5) == overlap(0)``): one base training set serves both. Each family also has a
moment-matched Gaussian (exact for truncation; for the slerp families it uses that independent
high-dimensional Gaussians are nearly orthogonal); :mod:`bench.shift.divergence` turns it and
samples into the divergences reported beside each intensity.

Angles: the paper labels extend's intensity pi (t - 0.5) and overlap's pi s (:attr:`Shift.angle`,
the labels its axes use). What the latents actually turn is about half of that
(:meth:`Shift.measured_angle`): two independent Gaussian vectors are ~pi/2 apart, so
``slerp(a1, a2; s)`` turns ~s pi/2 from ``a1``, and ``slerp(a1, eps; t)`` sits ~t pi/2 from ``a1``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.errors import ConfigError

FAMILIES = ("truncation", "extend", "overlap")
TRAIN_VALUES = {"truncation": 0.9, "extend": 0.5, "overlap": 0.0}
PARAM_NAMES = {"truncation": "R", "extend": "t", "overlap": "s"}


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation ``[sin((1-t) w) a + sin(t w) b] / sin w``, ``w = angle(a, b)``.

    Vectors are not normalised (the paper's convention); ``a`` and ``b`` broadcast over
    leading dimensions and interpolate along the last one. Computed in float64; a pair at
    angle ~0 falls back to linear interpolation (the limit of the formula).
    """
    a64, b64 = a.double(), b.double()
    cos = (a64 * b64).sum(-1, keepdim=True) / (a64.norm(dim=-1, keepdim=True) * b64.norm(dim=-1, keepdim=True))
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    sin_omega = torch.sin(omega)
    small = sin_omega < 1e-7
    safe = torch.where(small, torch.ones_like(sin_omega), sin_omega)
    wa = torch.where(small, torch.full_like(omega, 1.0 - t), torch.sin((1.0 - t) * omega) / safe)
    wb = torch.where(small, torch.full_like(omega, t), torch.sin(t * omega) / safe)
    return (wa * a64 + wb * b64).to(torch.promote_types(a.dtype, b.dtype))


@dataclass(frozen=True)
class Shift:
    """One point of a sweep: a family at an intensity ``value`` (its geometric parameter)."""
    family: str
    value: float

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"unknown shift family {self.family!r}; choose one of: {', '.join(FAMILIES)}")

    @property
    def angle(self) -> float | None:
        """The paper's labelled shift angle in radians (extend: pi (t - 0.5), overlap: pi s); None
        for truncation. The angle the latents actually turn is :meth:`measured_angle`."""
        if self.family == "extend":
            return math.pi * (self.value - 0.5)
        if self.family == "overlap":
            return math.pi * self.value
        return None

    def measured_angle(self, anchors: torch.Tensor, eps: torch.Tensor) -> float | None:
        """The angle (radians) the shift actually turns the latents from the base, measured on these
        anchors and draws ``eps`` (N, d): overlap, the angle between the centre ``slerp(a1, a2; s)`` and
        ``a1`` (about ``s * angle(a1, a2)``); extend, the mean over ``eps`` of ``angle(z, a1)`` minus the
        same at t = 0.5 (about ``(t - 0.5) angle(a1, eps)``). None for truncation."""
        if self.family == "truncation":
            return None
        a1 = anchors[0].double()

        def angle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            cos = (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1))
            return torch.arccos(cos.clamp(-1.0, 1.0))

        if self.family == "overlap":
            return float(angle(self.center(anchors).double(), a1))
        eps = eps.double()
        turned = angle(self.latents(eps, anchors), a1).mean() - angle(Shift("extend", 0.5).latents(eps, anchors), a1).mean()
        return float(turned)

    @property
    def key(self) -> str:
        """A canonical name of the latent distribution: equal keys decode identical datasets."""
        if self.family == "truncation":
            return f"scale{self.value:g}"
        center = "a1" if self.family == "extend" or self.value == 0 else f"slerp-a1-a2-{self.value:g}"
        t = self.value if self.family == "extend" else 0.5
        return f"slerp-{center}-eps-{t:g}"

    @property
    def percent(self) -> int:
        """The value as the reference script's integer argument (``--value``: the parameter x 100)."""
        pct = round(self.value * 100)
        if abs(pct - self.value * 100) > 1e-6:
            raise ConfigError(f"task.rng=reference takes the reference script's integer values (parameter x 100): "
                              f"{self.family} {self.value:g} is not a whole percent")
        return pct

    @property
    def reference_key(self) -> str:
        """The latent distribution's name under ``task.rng=reference``: the script's (experiment, value).
        Its overlap at s = 0 is not bitwise extend's t = 0.5 (the centre slerp rounds), so it has its own."""
        return f"ref-{self.family}-{self.percent}"

    def reference_latents(self, eps: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """This shift's latents as the reference script computes them, bit for bit: float32 throughout,
        the value as ``percent / 100``, its order of operations (``eps``: one generation batch)."""
        eps = eps.float()
        a1, a2 = anchors.float()
        t = self.percent / 100
        if self.family == "truncation":
            return eps * t
        if self.family == "overlap":  # the centre: a slerp of the two 1-d anchors, then extend's t = 1/2
            omega = torch.acos(torch.sum(a1 * a2) / (torch.norm(a1) * torch.norm(a2)))
            a1 = torch.sin((1 - t) * omega) * a1 / torch.sin(omega) + torch.sin(t * omega) * a2 / torch.sin(omega)
            t = 50 / 100
        center = a1[None]
        omega = torch.acos(torch.sum(eps * center, dim=1) / (torch.norm(eps, dim=1) * torch.norm(center, dim=1)))[:, None]
        return torch.sin((1 - t) * omega) * center / torch.sin(omega) + torch.sin(t * omega) * eps / torch.sin(omega)

    def center(self, anchors: torch.Tensor) -> torch.Tensor | None:
        """The anchor the slerp families pull towards (None for truncation)."""
        if self.family == "truncation":
            return None
        if self.family == "extend":
            return anchors[0]
        return slerp(anchors[0], anchors[1], self.value)

    def latents(self, eps: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Map standard-normal draws ``eps`` (N, d) to this shift's latents (N, d)."""
        if self.family == "truncation":
            return self.value * eps
        t = self.value if self.family == "extend" else 0.5
        return slerp(self.center(anchors).to(eps.dtype), eps, t)

    def gaussian(self, anchors: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The isotropic Gaussian ``N(mean, var I)`` this shift's latents follow (approximately
        for the slerp families: there ``angle(center, eps) ~ pi/2`` in high dimension)."""
        d = anchors.shape[1]
        if self.family == "truncation":
            return torch.zeros(d, dtype=torch.float64), self.value ** 2
        t = self.value if self.family == "extend" else 0.5
        return math.cos(t * math.pi / 2) * self.center(anchors).double(), math.sin(t * math.pi / 2) ** 2


def parse_values(family: str, values: list[float], unit: str) -> list[float]:
    """Intensities in the family's own parameter from config values given as the parameter
    (``unit='param'``) or as the shift angle in multiples of pi (``unit='angle_pi'``)."""
    if unit == "param":
        return [float(v) for v in values]
    if unit != "angle_pi":
        raise ConfigError(f"shift unit must be 'param' or 'angle_pi' (angle / pi), not {unit!r}")
    if family == "truncation":
        raise ConfigError("truncation has no angle; give its radii R with unit: param")
    offset = 0.5 if family == "extend" else 0.0
    return [offset + float(v) for v in values]


def validate_sweep(family: str, values: list[float]) -> None:
    """A sweep must start at the family's training value and increase (intensity grows)."""
    base = TRAIN_VALUES[family]
    if not values:
        raise ConfigError(f"shift family {family!r} has no intensities; list some under task.families.{family}.values")
    if not math.isclose(values[0], base, abs_tol=1e-9):
        raise ConfigError(f"the {family} sweep must start at its training value {PARAM_NAMES[family]}={base} "
                          f"(got {values[0]}); the accuracy drop is measured from there")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"the {family} intensities must increase strictly, got {values}")
    if family == "extend" and values[-1] > 1.0 + 1e-9:
        raise ConfigError(f"extend t must lie in [0.5, 1] (t = 1 is the full prior), got {values[-1]}")
