"""Robustness (paper eq. 10): how often the nearest neighbour of a query in the retrieval set X
stays the same when X is perturbed, Rob = E_{y, eps}[1{NN(y, X) = NN(y, X + eps)}].

Vectorised: every trial of a perturbation level is one batched (trials x N x M) score tensor,
chunked over queries, on GPU when one is given. The randomness of each level is drawn once and
shared by every alpha (common random numbers), so differences between alphas are not noise draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.modality_gap.gap import GapShift, _unit
from bench.modality_gap.metrics import nn_scores

KINDS = ("gaussian", "quantize", "paraphrase")
_CHUNK_ELEMENTS = 1 << 24  # scores held at once (trials x chunk x M)


@dataclass(frozen=True)
class Perturbation:
    """A perturbation of the retrieval set.

    - ``gaussian``: isotropic noise; ``level`` is the variance sigma^2, per coordinate
      (``gaussian_scale='coordinate'``, the paper's reading) or of the whole vector (``'norm'``:
      per-coordinate variance level/d).
    - ``quantize``: uniform quantisation to ``level`` bins over X's value range (deterministic).
    - ``paraphrase``: a fraction ``level`` of the retrieval items is replaced by the embedding of a
      random paraphrased template (needs the paraphrase embeddings, P x M x d).
    """
    kind: str
    level: float
    gaussian_scale: str = "coordinate"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"perturbation must be one of {KINDS}, not {self.kind!r}")
        if self.gaussian_scale not in ("coordinate", "norm"):
            raise ValueError(f"gaussian_scale must be 'coordinate' or 'norm', not {self.gaussian_scale!r}")
        if self.kind == "quantize" and (self.level < 2 or self.level != int(self.level)):
            raise ValueError(f"quantize level is a number of bins >= 2, not {self.level}")
        if self.kind == "paraphrase" and not 0 < self.level <= 1:
            raise ValueError(f"paraphrase level is the fraction of items replaced, in (0, 1], not {self.level}")

    def draw(self, trials: int, m: int, d: int, n_paraphrases: int, generator: torch.Generator) -> dict:
        """The randomness of ``trials`` draws (on CPU, so every device sees the same numbers)."""
        if self.kind == "gaussian":
            var = self.level if self.gaussian_scale == "coordinate" else self.level / d
            return {"noise": torch.randn(trials, m, d, generator=generator, dtype=torch.float64) * math.sqrt(var)}
        if self.kind == "paraphrase":
            n_swap = max(1, round(self.level * m))
            swap = torch.rand(trials, m, generator=generator).argsort(-1)[:, :n_swap]
            which = torch.randint(n_paraphrases, (trials, n_swap), generator=generator)
            return {"swap": swap, "which": which}
        return {}

    def apply(self, retrieval: torch.Tensor, draws: dict, paraphrases: torch.Tensor | None = None) -> torch.Tensor:
        """The perturbed retrieval sets (trials x M x d)."""
        if self.kind == "gaussian":
            return retrieval + draws["noise"].to(retrieval)
        if self.kind == "quantize":
            lo, hi = retrieval.min(), retrieval.max()
            step = (hi - lo) / int(self.level)
            bins = ((retrieval - lo) / step).floor().clamp(0, int(self.level) - 1)
            return (lo + (bins + 0.5) * step).unsqueeze(0)
        if paraphrases is None:
            raise ValueError("the paraphrase perturbation needs paraphrase embeddings (P x M x d)")
        swap, which = draws["swap"].to(retrieval.device), draws["which"].to(retrieval.device)
        out = retrieval.unsqueeze(0).repeat(len(swap), 1, 1)
        out.scatter_(1, swap.unsqueeze(-1).expand(-1, -1, out.shape[-1]), paraphrases[which, swap])
        return out


def n_trials(perturbation: Perturbation, trials: int) -> int:
    """Quantisation is deterministic: one trial says everything."""
    return 1 if perturbation.kind == "quantize" else trials


def is_correct(pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Whether predictions (..., N) are right: ``targets`` are labels (N) or a positives mask (N x M)."""
    if targets.dim() == 1:
        return pred == targets
    mask = targets.expand(*pred.shape[:-1], *targets.shape)
    return mask.gather(-1, pred.unsqueeze(-1)).squeeze(-1)


def predictions(query: torch.Tensor, retrieval: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour index of every query in every retrieval set ((T x) M x d -> (T x) N)."""
    m = retrieval.shape[-2]
    t = retrieval.shape[0] if retrieval.dim() == 3 else 1
    chunk = max(1, _CHUNK_ELEMENTS // (t * m))
    return torch.cat([nn_scores(query[i:i + chunk], retrieval).argmax(-1)
                      for i in range(0, len(query), chunk)], dim=-1)


def _mean_stderr(per_trial: torch.Tensor) -> tuple[float, float]:
    t = len(per_trial)
    mean = float(per_trial.mean())
    return mean, (float(per_trial.std(unbiased=True)) / math.sqrt(t) if t > 1 else 0.0)


def robustness_sweep(query: torch.Tensor, retrieval: torch.Tensor, targets: torch.Tensor, *,
                     alphas: list[float], shift: GapShift, perturbation: str, levels: list[float],
                     trials: int, seed: int = 0, paraphrases: torch.Tensor | None = None,
                     gaussian_scale: str = "coordinate", device: str | torch.device = "cpu",
                     dtype: torch.dtype = torch.float32) -> list[dict]:
    """Robustness and accuracy under perturbation for every (level, alpha).

    Each row: level, alpha, robustness (+ stderr over trials), accuracy (+ stderr), clean_accuracy,
    trials. ``targets`` are class labels (N) or a positives mask (N x M) for retrieval.
    """
    query, retrieval = query.to(device, dtype), retrieval.to(device, dtype)
    targets = targets.to(device)
    paraphrases = None if paraphrases is None else paraphrases.to(device, dtype)
    direction = shift.direction(query, retrieval)
    rows = []
    for i, level in enumerate(levels):
        pert = Perturbation(perturbation, level, gaussian_scale)
        t = n_trials(pert, trials)
        gen = torch.Generator().manual_seed(seed * 1000 + i)
        draws = pert.draw(t, retrieval.shape[0], retrieval.shape[1],
                          0 if paraphrases is None else len(paraphrases), gen)
        for alpha in alphas:
            q, r = shift.apply(query, retrieval, alpha, direction)
            para = None
            if paraphrases is not None:
                para = _unit(paraphrases + alpha * direction / 2) if shift.mode == "symmetric" else paraphrases
            clean = predictions(q, r)
            pred = predictions(q, pert.apply(r, draws, para))
            rob, rob_se = _mean_stderr((pred == clean).double().mean(-1))
            acc, acc_se = _mean_stderr(is_correct(pred, targets).double().mean(-1))
            rows.append({"level": level, "alpha": alpha, "robustness": rob, "robustness_stderr": rob_se,
                         "accuracy": acc, "accuracy_stderr": acc_se, "trials": t,
                         "clean_accuracy": float(is_correct(clean, targets).double().mean())})
    return rows
