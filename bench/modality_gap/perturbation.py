"""The perturbations of the retrieval set that robustness is measured under (paper eq. 10): Gaussian noise,
quantisation, and paraphrased class prototypes; each draws its randomness on CPU, once per level."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.modality_gap.config import Convention, PerturbationKind

KINDS = tuple(PerturbationKind)
CONVENTIONS = tuple(Convention)

@dataclass(frozen=True)
class Perturbation:
    """A perturbation of the retrieval set.

    - ``gaussian``: isotropic noise of variance ``level`` = sigma^2, read by ``convention``:
      ``norm`` (default) E||eps||^2 = sigma^2 (per-coordinate variance sigma^2/d: noise small
      against unit-norm embeddings, the only reading under which the paper's sigma^2 list is not at
      chance), or ``coordinate`` (sigma^2 per coordinate, ||eps|| ~ sigma sqrt(d)).
    - ``quantize``: uniform quantisation to ``level`` bins over X's value range (deterministic).
    - ``paraphrase``: a fraction ``level`` of the retrieval items (class prototypes) is replaced by
      its paraphrased prototype (same number of templates, each the paraphrase of its clean one);
      level 1 replaces all and is deterministic.
    """
    kind: str
    level: float
    convention: str = "norm"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"perturbation must be one of {KINDS}, not {self.kind!r}")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"gaussian convention must be one of {CONVENTIONS}, not {self.convention!r}")
        if self.kind == "gaussian" and not self.level > 0:
            raise ValueError(f"gaussian level is the variance sigma^2 > 0, not {self.level}")
        if self.kind == "quantize" and (self.level < 2 or self.level != int(self.level)):
            raise ValueError(f"quantize level is a number of bins >= 2, not {self.level}")
        if self.kind == "paraphrase" and not 0 < self.level <= 1:
            raise ValueError(f"paraphrase level is the fraction of items replaced, in (0, 1], not {self.level}")

    @property
    def deterministic(self) -> bool:
        return self.kind == "quantize" or (self.kind == "paraphrase" and self.level == 1)

    def trials(self, requested: int) -> int:
        """A deterministic perturbation says everything in one trial."""
        return 1 if self.deterministic else requested

    def draw(self, trials: int, shape: tuple[int, ...], generator: torch.Generator) -> dict:
        """The randomness of ``trials`` draws for a retrieval set of ``shape`` (M x d, or N x C x d
        for per-query candidates), on CPU so every device sees the same numbers."""
        if self.kind == "gaussian":
            var = self.level if self.convention == "coordinate" else self.level / shape[-1]
            return {"noise": torch.randn(trials, *shape, generator=generator, dtype=torch.float64) * math.sqrt(var)}
        if self.kind == "paraphrase":
            m = shape[0]
            n_swap = max(1, round(self.level * m))
            return {"swap": torch.rand(trials, m, generator=generator).argsort(-1)[:, :n_swap]}
        return {}

    def apply(self, retrieval: torch.Tensor, draws: dict, paraphrased: torch.Tensor | None = None) -> torch.Tensor:
        """The perturbed retrieval sets (trials x M x d)."""
        if self.kind == "gaussian":
            return retrieval + draws["noise"].to(retrieval)
        if self.kind == "quantize":
            lo, hi = retrieval.min(), retrieval.max()
            step = (hi - lo) / int(self.level)
            bins = ((retrieval - lo) / step).floor().clamp(0, int(self.level) - 1)
            return (lo + (bins + 0.5) * step).unsqueeze(0)
        if paraphrased is None or paraphrased.shape != retrieval.shape:
            raise ValueError("the paraphrase perturbation needs one paraphrased prototype per retrieval item (M x d)")
        swap = draws["swap"].to(retrieval.device)
        out = retrieval.unsqueeze(0).repeat(len(swap), 1, 1)
        idx = swap.unsqueeze(-1).expand(-1, -1, out.shape[-1])
        return out.scatter_(1, idx, paraphrased.unsqueeze(0).expand_as(out).gather(1, idx))


def noise_ratio(perturbed: torch.Tensor, retrieval: torch.Tensor) -> float:
    """Measured mean ||eps|| / ||x|| over trials and items (what the noise scale means in practice)."""
    eps = (perturbed - retrieval).double().norm(dim=-1)
    return float((eps / retrieval.double().norm(dim=-1).clamp_min(1e-12)).mean())
