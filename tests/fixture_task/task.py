"""task=lsq_digits: a ridge least-squares linear classifier on scikit-learn's 8×8 digits.

Tiny and real: it fits in milliseconds, so the test of a task added outside bench/ runs the
whole path (bench -> run record with claims -> bench-report) in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.context import RunContext


@dataclass
class LsqDigitsConfig:
    name: str = "lsq_digits"
    n_train: int = 1000
    ridge: float = 1e-2
    shuffle_labels: bool = False  # train on permuted labels: the claim must then fail


SCHEMAS = {"task": LsqDigitsConfig}


def run(ctx: RunContext) -> None:
    from sklearn.datasets import load_digits

    t, run = ctx.cfg.task, ctx.run
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(ctx.derive("split"))
    order = rng.permutation(len(y))
    train, test = order[:t.n_train], order[t.n_train:]
    features = np.c_[x / 16.0, np.ones(len(x))]
    labels = rng.permutation(y[train]) if t.shuffle_labels else y[train]
    a = features[train]
    w = np.linalg.solve(a.T @ a + t.ridge * np.eye(a.shape[1]), a.T @ np.eye(10)[labels])
    correct = ((features[test] @ w).argmax(1) == y[test]).astype(float)
    run.set_model("ridge_least_squares", "fit by the task", int(w.size))
    run.set_dataset("sklearn_digits", "test", len(test))
    # per-digit correctness as the items: the claim's interval is over the held-out digits
    run.log_metric("accuracy", float(correct.mean()), params={"labels": "shuffled" if t.shuffle_labels else "true"},
                   n=len(test), items=correct, item_set="sklearn_digits:held_out")
