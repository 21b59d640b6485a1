"""Template paraphrase, the paper's way: zero-shot with one prompt template (and with the ensemble of
all of them), then the same prompts reworded ("a photo of a {c}." -> "a photograph of a {c}."). Per
view, the original model's accuracy drop, and what closing the gap (paper eq. 11, g' from that
view's own prototypes) does to it. Closing the gap can only change the drop through the part of the
paraphrase shift X' - X that lies along g' (the shift is orthogonal to X's span), so every view also
records that part's share of ||X' - X||^2 beside the same share for random directions (the 95th
percentile over 2,000 of them: what "a real component along g'" has to beat).
"""
from __future__ import annotations

import torch

from bench.modality_gap.gap import GapShift
from bench.modality_gap.robustness import predictions
from bench.modality_gap.zeroshot import prototypes


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def views(templates: torch.Tensor, paraphrases: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(clean, paraphrased) prototypes per view: ``"0"``..``"T-1"`` one template each, ``"ensemble"`` all."""
    out = {str(t): (_unit(templates[t]), _unit(paraphrases[t])) for t in range(len(templates))}
    out["ensemble"] = (prototypes(templates), prototypes(paraphrases))
    return out


def _share_along(moved: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Share of ``sum ||moved_i||^2`` along each unit direction (rows of ``directions``)."""
    unit = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    return (moved @ unit.T).square().sum(0) / moved.square().sum().clamp_min(1e-300)


def paraphrase_rows(query: torch.Tensor, templates: torch.Tensor, paraphrases: torch.Tensor, labels: torch.Tensor,
                    alphas: list[float], subspace: str, seed: int = 0, n_random: int = 2000) -> list[dict]:
    """Per view and alpha: per-query correctness with clean and paraphrased prototypes, and whether the
    prediction is unchanged by the paraphrase; per view: the paraphrase shift's share along g'.

    Returns dicts ``{"template", "alpha", "clean", "paraphrased", "unchanged"}`` (per-query float
    tensors) and ``{"template", "share_along_gap", "share_random_95"}``."""
    shift = GapShift("paper", subspace)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for name, (clean, para) in views(templates.double(), paraphrases.double()).items():
        v = shift.direction(query, clean)
        moved = para - clean
        random = torch.randn(n_random, moved.shape[-1], generator=gen, dtype=torch.float64)
        rows.append({"template": name, "share_along_gap": float(_share_along(moved, v.unsqueeze(0))[0]),
                     "share_random_95": float(_share_along(moved, random).quantile(0.95))})
        for alpha in alphas:
            q = query.double() - alpha * v
            pred_clean, pred_para = predictions(q, clean), predictions(q, para)
            rows.append({"template": name, "alpha": alpha, "clean": (pred_clean == labels).double(),
                         "paraphrased": (pred_para == labels).double(),
                         "unchanged": (pred_clean == pred_para).double()})
    return rows
