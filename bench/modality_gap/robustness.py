"""Robustness (paper eq. 10): how often the nearest neighbour of a query in the retrieval set X
stays the same when X is perturbed, Rob = E_{y, eps}[1{NN(y, X) = NN(y, X + eps)}].

Near the GEMM roofline: for each alpha, the clean set and every trial of every level are stacked
into one ((1 + sum of trials)*M x d) matrix (as many as fit a memory budget), so a chunk of
queries is scored against all of them with a single fused ``addmm`` (2 y.x - ||x||^2), in the
task's dtype, chunked over queries to bound memory, on GPU when one is given. The clean search of
each alpha is computed once and shared by every level. The randomness
of each level is drawn once and shared by every alpha (common random numbers), so differences
between alphas are not noise draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.modality_gap.gap import GapShift
from bench.modality_gap.metrics import choice_scores
from bench.seeding import torch_generator

KINDS = ("gaussian", "quantize", "paraphrase")
CONVENTIONS = ("norm", "coordinate")
_CHUNK_ELEMENTS = 1 << 24  # scores held at once (query chunk x trials x M)
_STACK_ELEMENTS = 1 << 26  # retrieval-set elements stacked into one GEMM (256 MiB in float32)


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


def is_correct(pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Whether predictions (..., N) are right: ``targets`` are labels (N) or a positives mask (N x M)."""
    if targets.dim() == 1:
        return pred == targets
    mask = targets.expand(*pred.shape[:-1], *targets.shape)
    return mask.gather(-1, pred.unsqueeze(-1)).squeeze(-1)


def predictions(query: torch.Tensor, retrieval: torch.Tensor, chunk_elements: int = _CHUNK_ELEMENTS) -> torch.Tensor:
    """Nearest-neighbour index of every query in every retrieval set ((T x) M x d -> (T x) N).

    One fused GEMM per query chunk against all T sets stacked: scores = 2 y.x - ||x||^2.
    """
    sets = retrieval if retrieval.dim() == 3 else retrieval.unsqueeze(0)
    t, m, d = sets.shape
    stacked = sets.reshape(t * m, d)
    neg_sq = stacked.square().sum(-1)
    out = torch.empty(t, len(query), dtype=torch.long, device=query.device)
    chunk = max(1, chunk_elements // (t * m))
    for i in range(0, len(query), chunk):
        q = query[i:i + chunk]
        scores = torch.addmm(neg_sq, q, stacked.T, beta=-1, alpha=2)  # (chunk, T*M)
        out[:, i:i + len(q)] = scores.view(len(q), t, m).argmax(-1).T
    return out if retrieval.dim() == 3 else out[0]


def choice_predictions(query: torch.Tensor, choices: torch.Tensor) -> torch.Tensor:
    """The nearest of each query's own candidates ((T x) N x C x d -> (T x) N)."""
    return choice_scores(query, choices).argmax(-1)


def search_all(search, query: torch.Tensor, sets: list[torch.Tensor],
               budget: int = _STACK_ELEMENTS) -> list[torch.Tensor]:
    """``search(query, s)`` for every stack of sets ``s`` (T_i x ...), with as many stacks
    concatenated into one search (one GEMM per query chunk) as fit ``budget`` elements."""
    out: list[torch.Tensor] = []
    group: list[torch.Tensor] = []

    def flush() -> None:
        if group:
            preds = search(query, group[0] if len(group) == 1 else torch.cat(group))
            out.extend(preds.split([len(g) for g in group]))
            group.clear()

    for s in sets:
        if group and sum(g.numel() for g in group) + s.numel() > budget:
            flush()
        group.append(s)
    flush()
    return out


def _mean_stderr(per_trial: torch.Tensor) -> tuple[float, float]:
    t = len(per_trial)
    mean = float(per_trial.mean())
    return mean, (float(per_trial.std(unbiased=True)) / math.sqrt(t) if t > 1 else 0.0)


def robustness_sweep(query: torch.Tensor, retrieval: torch.Tensor, targets: torch.Tensor, *,
                     alphas: list[float], shift: GapShift, perturbation: str, levels: list[float],
                     trials: int, seed: int = 0, paraphrased: torch.Tensor | None = None,
                     convention: str = "norm", direction: torch.Tensor | None = None,
                     device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> list[dict]:
    """Robustness and accuracy under perturbation for every (level, alpha).

    Each row: level, alpha, robustness (+ stderr over trials), robustness_gain over ``alphas[0]``
    (+ its paired stderr: both alphas see the same draws, so the per-trial differences give the
    difference's stderr, far below the two stderrs in quadrature), accuracy (+ stderr),
    clean_accuracy, trials, and for gaussian noise the convention and the measured mean ||eps||/||x||.
    ``targets`` are class labels (N) or a positives mask (N x M). ``retrieval`` is one set (M x d)
    searched by every query, or per-query candidates (N x C x d, multiple choice; every trial's noise
    is then N x C x d: mind the memory at large N x trials). Pass the task's ``direction``
    (float64, from :meth:`GapShift.direction`) so clean metrics and every sweep share one.
    """
    if direction is None:
        direction = shift.direction(query, retrieval)
    query, retrieval = query.to(device, dtype), retrieval.to(device, dtype)
    direction = direction.to(device, dtype)
    targets = targets.to(device)
    paraphrased = None if paraphrased is None else paraphrased.to(device, dtype)
    search = choice_predictions if retrieval.dim() == 3 else predictions
    perts = [Perturbation(perturbation, level, convention) for level in levels]
    draws = [p.draw(p.trials(trials), tuple(retrieval.shape), torch_generator(seed, "level", i))
             for i, p in enumerate(perts)]
    draws = [{k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in d.items()} for d in draws]
    unmoved: dict[int, tuple[torch.Tensor, float | None]] = {}  # perturbed sets when X does not move (paper mode)
    first_alpha: dict[int, torch.Tensor] = {}  # per level: per-trial robustness at alphas[0]
    rows = []
    for alpha in alphas:
        q, r = shift.apply(query, retrieval, alpha, direction)
        para = None if paraphrased is None else shift.shift_retrieval_like(paraphrased, alpha, direction)
        perturbed, ratios = [], []
        for i, (pert, draw) in enumerate(zip(perts, draws)):
            if r is retrieval and i in unmoved:
                sets, ratio = unmoved[i]
            else:
                sets = pert.apply(r, draw, para)
                ratio = noise_ratio(sets, r) if pert.kind == "gaussian" else None
                if r is retrieval:
                    unmoved[i] = sets, ratio
            perturbed.append(sets)
            ratios.append(ratio)
        clean, *preds = search_all(search, q, [r.unsqueeze(0)] + perturbed)  # the clean search once per alpha
        clean = clean[0]
        clean_acc = float(is_correct(clean, targets).double().mean())
        for i, (pert, pred, ratio) in enumerate(zip(perts, preds, ratios)):
            agree = (pred == clean).double().mean(-1)  # per trial
            base = first_alpha.setdefault(i, agree)
            rob, rob_se = _mean_stderr(agree)
            gain, gain_se = _mean_stderr(agree - base)  # paired over the shared draws
            acc, acc_se = _mean_stderr(is_correct(pred, targets).double().mean(-1))
            row = {"level": pert.level, "alpha": alpha, "robustness": rob, "robustness_stderr": rob_se,
                   "robustness_gain": gain, "robustness_gain_stderr": gain_se,
                   "accuracy": acc, "accuracy_stderr": acc_se, "trials": len(pred), "clean_accuracy": clean_acc}
            if pert.kind == "gaussian":
                row.update(convention=pert.convention, noise_ratio=ratio)
            rows.append(row)
    return sorted(rows, key=lambda row: (levels.index(row["level"]), alphas.index(row["alpha"])))
