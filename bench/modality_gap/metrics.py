"""Clean metrics with the usual CLIP zero-shot conventions (acc1, acc5, mean-per-class recall,
retrieval recall@k), computed on Euclidean nearest-neighbour scores.

For unit-norm retrieval embeddings (prototypes, captions) ``nn_scores`` ranks exactly like the
conventional ``logits = 100 * image @ protos``; unlike a dot product it stays the nearest-neighbour
rule when the queries are shifted off the sphere or the retrieval set is perturbed.
"""
from __future__ import annotations

import math

import torch


def nn_scores(query: torch.Tensor, retrieval: torch.Tensor) -> torch.Tensor:
    """``-||x - y||^2 + ||y||^2`` for every (query, retrieval) pair: argmax = nearest neighbour.

    ``retrieval`` may carry leading batch dims (trials x M x d); the result is (..., N, M).
    """
    return 2 * query @ retrieval.transpose(-1, -2) - retrieval.square().sum(-1).unsqueeze(-2)


def choice_scores(query: torch.Tensor, choices: torch.Tensor) -> torch.Tensor:
    """``nn_scores`` when every query has its own candidates: query (N x d), choices (..., N x C x d)
    -> (..., N x C); argmax = the nearest of the query's own candidates."""
    return 2 * (choices @ query.unsqueeze(-1)).squeeze(-1) - choices.square().sum(-1)


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores; NaN when fewer than k classes."""
    if scores.shape[-1] < k:
        return math.nan
    top = scores.topk(k, dim=-1).indices
    return float((top == labels.unsqueeze(-1)).any(-1).double().mean())


def mean_per_class_recall(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> float:
    """Mean over classes present in ``labels`` of the fraction of that class predicted correctly."""
    correct = torch.zeros(n_classes, dtype=torch.float64).index_add_(0, labels, (pred == labels).double())
    count = torch.bincount(labels, minlength=n_classes).double()
    present = count > 0
    return float((correct[present] / count[present]).mean())


def classification_metrics(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """acc1, acc5 and mean_per_class_recall for an (N x C) score matrix."""
    return {"acc1": topk_accuracy(scores, labels, 1), "acc5": topk_accuracy(scores, labels, 5),
            "mean_per_class_recall": mean_per_class_recall(scores.argmax(-1), labels, scores.shape[-1])}


def recall_at_k(scores: torch.Tensor, positives: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Fraction of queries with at least one positive among their top-k gallery items.

    ``positives`` is an (N x M) boolean matrix: which gallery items are correct for each query.
    """
    if positives.shape != scores.shape:
        raise ValueError(f"positives {tuple(positives.shape)} must match scores {tuple(scores.shape)}")
    out = {}
    for k in ks:
        top = scores.topk(min(k, scores.shape[-1]), dim=-1).indices
        out[k] = float(positives.gather(-1, top).any(-1).double().mean())
    return out
