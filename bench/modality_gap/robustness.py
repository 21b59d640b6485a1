"""Robustness (paper eq. 10): how often the nearest neighbour of a query in the retrieval set X
stays the same when X is perturbed, Rob = E_{y, eps}[1{NN(y, X) = NN(y, X + eps)}].

Less work than one search per config: Gaussian noise is added to the (shifted) retrieval set and
every gap shift moves the query along one line, so the query-noise products y.eps are the same for
every alpha: one GEMM of the queries against the clean set and every trial of every level stacked
(as many as fit a memory budget) serves the whole alpha sweep, and each alpha only adds per-item
and per-query terms before its argmax (``_additive_predictions``; chunked over queries, in the
task's dtype, on GPU when one is given). Quantisation and paraphrases are not additive, and per-query
candidates (multiple choice) have no shared GEMM to save: they take the direct path, per alpha the
clean set and every perturbed set
stacked into one fused ``addmm`` (2 y.x - ||x||^2), the clean search once per alpha, perturbed sets
built once per level when X does not move. The randomness of each level is drawn once and shared by
every alpha (common random numbers), so differences between alphas are not noise draws.
"""
from __future__ import annotations

import math

import torch

from bench.modality_gap.gap import GapShift
from bench.modality_gap.metrics import choice_scores
from bench.modality_gap.perturbation import Perturbation, noise_ratio
from bench.seeding import torch_generator

_CHUNK_ELEMENTS = 1 << 24  # scores held at once (query chunk x trials x M)
_STACK_ELEMENTS = 1 << 26  # retrieval-set elements stacked into one GEMM (256 MiB in float32)
# CPU: scores assembled per alpha at once (16 MiB in float32, within L3). Quiet, 2^18..2^22 time the
# same at n = 10k; on a loaded machine fewer, larger chunks stall less (2^18: 1.4 s median, 2^22: 0.8 s)
_ASSEMBLY_ELEMENTS = 1 << 22


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


def _batches(sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive indices grouped so each group's total size stays within ``budget`` (a single
    item over it gets a group of its own)."""
    groups: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if groups and total + size <= budget:
            groups[-1].append(i)
            total += size
        else:
            groups.append([i])
            total = size
    return groups


def search_all(search, query: torch.Tensor, sets: list[torch.Tensor],
               budget: int = _STACK_ELEMENTS) -> list[torch.Tensor]:
    """``search(query, s)`` for every stack of sets ``s`` (T_i x ...), with as many stacks
    concatenated into one search (one GEMM per query chunk) as fit ``budget`` elements."""
    out: list[torch.Tensor] = []
    for group in _batches([s.numel() for s in sets], budget):
        stacks = [sets[i] for i in group]
        preds = search(query, stacks[0] if len(stacks) == 1 else torch.cat(stacks))
        out.extend(preds.split([len(s) for s in stacks]))
    return out


# Per alpha: the clean predictions (N), each level's perturbed predictions (T_i x N), and each
# level's measured noise ratio (gaussian) or None.
AlphaPredictions = tuple[torch.Tensor, list[torch.Tensor], list[float | None]]


def _direct_predictions(query: torch.Tensor, retrieval: torch.Tensor, shift: GapShift, alphas: list[float],
                        direction: torch.Tensor, perts: list[Perturbation], draws: list[dict],
                        paraphrased: torch.Tensor | None) -> list[AlphaPredictions]:
    """Any perturbation: per alpha, shift, perturb (once per level when X does not move) and search
    the clean set and every perturbed set in stacked GEMMs."""
    search = choice_predictions if retrieval.dim() == 3 else predictions
    unmoved: dict[int, tuple[torch.Tensor, float | None]] = {}  # perturbed sets when X does not move (paper mode)
    out = []
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
        out.append((clean[0], preds, ratios))
    return out


def _additive_predictions(query: torch.Tensor, retrieval: torch.Tensor, shift: GapShift, alphas: list[float],
                          direction: torch.Tensor, perts: list[Perturbation], draws: list[dict],
                          budget: int = _STACK_ELEMENTS, chunk_elements: int | None = None) -> list[AlphaPredictions]:
    """Additive noise on one retrieval set (M x d): one query-item GEMM serves every alpha.

    Every shift moves the query along one line, q = c (y - a v) (``GapShift.query_step``: c = 1, or
    1/||y - a v|| when it renormalises), and the noise is added after the shift: x = r_alpha + eps.
    Halved, the score is c (y.x - a v.x) - ||x||^2/2 (c > 0 per query: the argmax is unchanged by it
    but it does not cancel against ||x||^2). The only query-item products are y.x, and
    y.x = y.r_alpha + y.eps, where y.eps is the same for every alpha:

    - X unmoved (paper, image_only): one GEMM of y against [X; X + eps_1; ...] serves every alpha;
    - X moved (symmetric): one GEMM of y against [0; eps_1; ...] plus y against every r_alpha (the
      clean-sized part, M columns per alpha);

    and per alpha only per-item vectors (v.x, ||x||^2, computed from the perturbed sets the per-config
    search would build) and per-query scalars c are left: an element-wise assembly and argmax over
    query chunks of ``chunk_elements`` scores. Equal to the per-config search
    up to float rounding (a different rounding can only flip a near-exact tie).
    """
    m, d = retrieval.shape
    if chunk_elements is None:
        chunk_elements = _ASSEMBLY_ELEMENTS if query.device.type == "cpu" else _CHUNK_ELEMENTS
    v = direction
    moved = shift.moves_retrieval
    steps = [shift.query_step(alpha) for alpha in alphas]
    shifted = [shift.shift_retrieval_like(retrieval, alpha, v) for alpha in alphas]
    # Per alpha and block (block 0: the clean set; block i: level i's trials): x.v and ||x||^2 of
    # every perturbed item, and each level's noise ratio; built once when X does not move.
    columns: list[tuple[list[torch.Tensor], list[torch.Tensor], list[float | None]]] = []
    operands: list[torch.Tensor] = []  # the GEMM's right-hand blocks
    for r in shifted:
        if columns and not moved:
            columns.append(columns[0])
            continue
        sets = [r.unsqueeze(0)] + [pert.apply(r, draw) for pert, draw in zip(perts, draws)]
        columns.append(([s @ v for s in sets], [s.square().sum(-1) / 2 for s in sets],
                        [noise_ratio(s, r) for s in sets[1:]]))
        if not operands:  # the same blocks for every alpha: the noise alone (X moved), or X's perturbed sets
            operands = [torch.zeros_like(r).unsqueeze(0)] + [draw["noise"] for draw in draws] if moved else sets
    scale = [1 / (query - step * v).norm(dim=-1).clamp_min(1e-12) if unit else None for step, unit in steps]
    both = torch.cat(shifted) if moved else None  # y . r_alpha for every alpha in one GEMM per chunk
    preds: list[list[torch.Tensor]] = [[] for _ in alphas]
    for group in _batches([o.numel() for o in operands], budget):
        stacked = torch.cat([operands[b] for b in group]).reshape(-1, d)
        blocks = len(stacked) // m
        per_alpha = []  # per column: score = c (P + beta) + gamma, or P + (beta + gamma) when c = 1
        for (step, _), (proj, half_sq, _), c in zip(steps, columns, scale):
            beta = torch.cat([proj[b] for b in group]).flatten() * -step
            gamma = torch.cat([half_sq[b] for b in group]).flatten().neg_()
            per_alpha.append((beta, gamma) if c is not None else (beta + gamma, None))
        found = [torch.empty(len(query), blocks, dtype=torch.long, device=query.device) for _ in alphas]
        chunk = max(1, chunk_elements // len(stacked))
        for i in range(0, len(query), chunk):
            y = query[i:i + chunk]
            prod = y @ stacked.T  # (chunk, blocks*M): every alpha's query-item products
            base = None if both is None else y @ both.T  # (chunk, alphas*M)
            buf = torch.empty_like(prod)
            for j, ((beta, gamma), c) in enumerate(zip(per_alpha, scale)):
                s = torch.add(prod, beta, out=buf)
                if base is not None:
                    s.view(len(y), blocks, m).add_(base[:, j * m:(j + 1) * m].unsqueeze(1))
                if c is not None:
                    torch.addcmul(gamma, c[i:i + chunk].unsqueeze(1), s, out=s)
                torch.argmax(s.view(len(y), blocks, m), -1, out=found[j][i:i + len(y)])
        for j, f in enumerate(found):
            preds[j].extend(f.T.contiguous().split([len(operands[b]) for b in group]))
    return [(p[0][0], p[1:], ratios) for p, (_, _, ratios) in zip(preds, columns)]


def _mean_stderr(per_item: torch.Tensor) -> tuple[float, float]:
    """Mean and stderr over the items (queries): the units sampled, never the noise trials."""
    n = len(per_item)
    mean = float(per_item.mean())
    return mean, (float(per_item.std(unbiased=True)) / math.sqrt(n) if n > 1 else 0.0)


def sweep_predictions(query: torch.Tensor, retrieval: torch.Tensor, *, alphas: list[float], shift: GapShift,
                      perturbation: str, levels: list[float], trials: int, seed: int = 0,
                      paraphrased: torch.Tensor | None = None, convention: str = "norm",
                      direction: torch.Tensor | None = None, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32) -> list[AlphaPredictions]:
    """Per alpha: clean predictions (N), each level's perturbed predictions (trials x N) and noise
    ratio. Gaussian noise on one retrieval set takes the additive path (one GEMM for every alpha);
    quantisation and paraphrases (not additive) and per-query candidates take the direct one."""
    if direction is None:
        direction = shift.direction(query, retrieval)
    query, retrieval = query.to(device, dtype), retrieval.to(device, dtype)
    direction = direction.to(device, dtype)
    paraphrased = None if paraphrased is None else paraphrased.to(device, dtype)
    perts = [Perturbation(perturbation, level, convention) for level in levels]
    draws = [p.draw(p.trials(trials), tuple(retrieval.shape), torch_generator(seed, "level", i))
             for i, p in enumerate(perts)]
    draws = [{k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in d.items()} for d in draws]
    if perturbation == "gaussian" and retrieval.dim() == 2:
        return _additive_predictions(query, retrieval, shift, alphas, direction, perts, draws)
    return _direct_predictions(query, retrieval, shift, alphas, direction, perts, draws, paraphrased)


def robustness_sweep(query: torch.Tensor, retrieval: torch.Tensor, targets: torch.Tensor, *,
                     alphas: list[float], shift: GapShift, perturbation: str, levels: list[float],
                     trials: int, seed: int = 0, paraphrased: torch.Tensor | None = None,
                     convention: str = "norm", direction: torch.Tensor | None = None,
                     device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> list[dict]:
    """Robustness and accuracy under perturbation for every (level, alpha).

    Each row: level, alpha, per-query values averaged over the trials (``robustness_items``: the
    share of trials whose prediction equals the clean one; ``accuracy_items``), robustness and
    accuracy (their means) with stderrs over the queries (the units sampled: more trials make each
    query's value more precise, never the sample larger), robustness_gain over ``alphas[0]`` (+ its
    stderr over the per-query differences: both alphas see the same draws), clean_accuracy, trials,
    and for gaussian noise the convention and the measured mean ||eps||/||x||.
    ``targets`` are class labels (N) or a positives mask (N x M). ``retrieval`` is one set (M x d)
    searched by every query, or per-query candidates (N x C x d, multiple choice; every trial's noise
    is then N x C x d: mind the memory at large N x trials). Pass the task's ``direction``
    (float64, from :meth:`GapShift.direction`) so clean metrics and every sweep share one.
    """
    per_alpha = sweep_predictions(query, retrieval, alphas=alphas, shift=shift, perturbation=perturbation,
                                  levels=levels, trials=trials, seed=seed, paraphrased=paraphrased,
                                  convention=convention, direction=direction, device=device, dtype=dtype)
    targets = targets.to(device)
    perts = [Perturbation(perturbation, level, convention) for level in levels]
    first_alpha: dict[int, torch.Tensor] = {}  # per level: per-query robustness at alphas[0]
    rows = []
    for alpha, (clean, preds, ratios) in zip(alphas, per_alpha):
        clean_acc = float(is_correct(clean, targets).double().mean())
        for i, (pert, pred, ratio) in enumerate(zip(perts, preds, ratios)):
            agree = (pred == clean).double().mean(0).cpu()  # per query, over the trials
            correct = is_correct(pred, targets).double().mean(0).cpu()
            base = first_alpha.setdefault(i, agree)
            rob, rob_se = _mean_stderr(agree)
            gain, gain_se = _mean_stderr(agree - base)
            acc, acc_se = _mean_stderr(correct)
            row = {"level": pert.level, "alpha": alpha, "robustness": rob, "robustness_stderr": rob_se,
                   "robustness_gain": gain, "robustness_gain_stderr": gain_se,
                   "accuracy": acc, "accuracy_stderr": acc_se, "trials": len(pred), "clean_accuracy": clean_acc,
                   "robustness_items": agree, "accuracy_items": correct}
            if pert.kind == "gaussian":
                row.update(convention=pert.convention, noise_ratio=ratio)
            rows.append(row)
    return sorted(rows, key=lambda row: (levels.index(row["level"]), alphas.index(row["alpha"])))
