"""The whitening task's card: Chowers & Weiss (ICML 2023), first-layer filters vs the linear-CNN formula.

The paper (arXiv 2206.02454): Tables 1-3 and the whitening evidence.
A fit is read against its null baselines (issue 22): ``fit_margin`` >= 0 exactly when the fit beats
the best power law lambda^p by 0.05 and e ∝ lambda by 0.2, and the fitted formula is 0.2 away from
e ∝ lambda (:mod:`bench.whitening.fits`). Trained CNNs are read at half and at twice their stopping
point: a claim that holds at one and not the other is inconclusive (:class:`AtBothEnds`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from bench.card import Metric, Paper, TaskCard
from bench.claims import AtLeast, AtMost, Claim, Difference, Expr, Gate, Value
from bench.claims.verdict import INCONCLUSIVE


class AtBothEnds:
    """One check judged at two training lengths (``half`` and ``double`` the stopping point): reproduced
    (or not) when both agree, inconclusive when they differ; the figures and note name both."""

    def __init__(self, make: Any) -> None:
        self.ends = {phase: make(phase) for phase in ("half", "double")}

    def rows(self, rows):
        rows = list(rows)
        return [r for check in self.ends.values() for r in check.rows(rows)]

    def compared(self, rows):
        rows = list(rows)
        return [group for check in self.ends.values() for group in check.compared(rows)]

    def judge(self, sample):
        verdicts = {phase: check.judge(sample) for phase, check in self.ends.items()}
        half, double = verdicts["half"], verdicts["double"]
        status = half.status if half.status == double.status else INCONCLUSIVE
        figures = tuple(f"at {phase}: {f}" for phase, v in verdicts.items() for f in v.figures)
        note = "; ".join(f"at {phase} the stopping point: {v.status}" for phase, v in verdicts.items())
        # the value shown is the longer training's (the end the paper's 30+ epochs are nearer to)
        return dataclasses.replace(double, status=status, figures=figures, note=f"{note} ({double.note})")


FIT = "min(r − r(λ^p) − 0.05, r − r(λ) − 0.2, 1 − r(formula, λ) − 0.2)"


def fit_margin(**where: Any) -> Expr:
    """The fit margin with the figures a fit is read by: r, best t, edge, r of the best λ^p and of λ."""
    names = ("formula_fit_r", "fit_margin", "formula_t", "fit_edge", "power_r", "lambda_r")
    grid = {"grid": "paper"}
    values = [Value(n, **where, **({} if n in ("power_r", "lambda_r") else grid)) for n in names]
    return Expr(lambda r, margin, *_: margin, *values, text=f"fit margin {FIT}")


def _trained(labels: str, phase: str, **extra: Any) -> dict:
    return {"over": "seeds", "kind": "cnn", "weights": "trained", "first_layer": "learned", "labels": labels,
            "phase": phase, **extra}


def _trained_gate(labels: str, floor: float) -> Gate:
    return Gate(Value("train_acc", reduce="min", over="model", labels=labels, first_layer="learned",
                      phase=("stop", "end")),
                at_least=floor, reason=f"every {labels}-label CNN trained (training accuracy at its stopping point "
                                       f"or at the end ≥ {floor:g})")


TABLE3 = ("vgg11_bn", "resnet18", "resnet20")  # conf/experiment/whitening/table3.yaml (in this folder)
# registry name -> (claim id suffix, what it is)
PRETRAINED = {"tv_mobilenet_v2": ("mobilenet_v2", "MobileNetV2 (torchvision, ImageNet)"),
              "efficientnet_lite0": ("efficientnet_lite0", "EfficientNet-Lite0 (ImageNet)"),
              "keras_cifar_cnn": ("keras_cnn", "the cifar-10-model Keras CNN (CIFAR-10)")}


def _pretrained_claim(arch: str, short: str, label: str) -> Claim:
    where = {"stage": "pretrained", "arch": arch}
    return Claim(f"pretrained_fit_{short}", f"{label}'s pretrained first layer fits the formula beyond the "
                 f"trivial profiles (fit margin ≥ 0)", paper="ImageNet r = 0.90, CIFAR-10 0.94 (Table 3)",
                 check=AtLeast(fit_margin(**where), 0.0),
                 gates=Gate(Value("pretrained_acc", arch=arch), at_least=0.5,
                            reason="the weights are the right ones (they classify their 20 images)"))


CLAIMS = (
    *(_pretrained_claim(arch, short, label) for arch, (short, label) in PRETRAINED.items()),
    Claim("fits_formula", "Trained CNNs' first layers fit the formula beyond the trivial profiles (fit margin ≥ 0 "
          "over the seeds, at half and at twice the stopping point)",
          paper="r = 0.94 CIFAR-10, 0.90 ImageNet, 0.96 CelebA (Table 3)",
          check=AtBothEnds(lambda phase: AtLeast(fit_margin(**_trained("true", phase)), 0.0)),
          gates=_trained_gate("true", 0.5)),
    Claim("random_labels_fit", "With random labels the first layer still fits the formula beyond the trivial "
          "profiles (fit margin ≥ 0, at half and twice the stopping point)",
          paper="true-vs-random r = 0.90 ± 0.02 CIFAR-10 (Table 2); fits as true labels do (Sec. 5)",
          check=AtBothEnds(lambda phase: AtLeast(fit_margin(**_trained("random", phase)), 0.0)),
          gates=_trained_gate("random", 0.2)),
    Claim("random_init_does_not_fit", "A random init does not fit the formula (fit margin < 0)",
          paper="random init r = 0.1 ± 0.15 (Table 3)",
          check=AtMost(fit_margin(over="seeds", kind="cnn", weights="init", labels="true"), 0.0)),
    Claim("seed_consistency", "Energy profiles are consistent across seeds (r ≥ 0.9)",
          paper="r = 0.99 CIFAR-10, 0.97 CIFAR-100, 0.99 CelebA (Table 1)",
          check=AtLeast(Value("consistency_r", axis="seed", kind="cnn", labels="true", first_layer="learned",
                              over="pairs"), 0.9),
          gates=_trained_gate("true", 0.5)),
    Claim("labels_consistency", "True- and random-label profiles agree (r ≥ 0.88)",
          paper="r = 0.90 ± 0.02 CIFAR-10, 0.91 CIFAR-100, 0.96 CelebA (Table 2)",
          check=AtLeast(Value("consistency_r", axis="labels", kind="cnn", labels="true-random", over="pairs"), 0.88),
          gates=(_trained_gate("true", 0.5), _trained_gate("random", 0.2))),
    Claim("pca_labels_break_fit", "Labels tied to one PCA direction break the fit: the PCA-label CNN fits ≥ 0.1 "
          "worse than the worst true- or random-label CNN (at the stopping point)",
          paper="labels tied to energy along one PCA direction break the true-vs-random match (Sec. 5)",
          check=AtLeast(Difference(
              Value("formula_fit_r", reduce="min", over="model", kind="cnn", weights="trained",
                    labels=("true", "random"), grid="paper", first_layer="learned", phase=("stop", "end")),
              Value("formula_fit_r", over="model", kind="cnn", weights="trained", labels="pca", grid="paper",
                    phase=("stop", "end"))), 0.1),
          gates=_trained_gate("true", 0.5)),
    Claim("frozen_first_layer_control", "A frozen random first layer fits no better than a random init "
          "(frozen minus mean init fit ≤ 0.1)", paper="random init r = 0.1 ± 0.15 (Table 3)",
          check=AtMost(Difference(
              Value("formula_fit_r", over="model", kind="cnn", weights="trained", grid="paper", first_layer="frozen",
                    phase=("stop", "end")),
              Value("formula_fit_r", over="model", kind="cnn", weights="init", grid="paper")), 0.1)),
    *(Claim(f"table3_fit_{arch}", f"{arch}'s trained first layer fits the formula beyond the trivial profiles "
            f"(fit margin ≥ 0; Table 3, one row per architecture)", paper="r = 0.94 CIFAR-10 (Table 3)",
            check=AtLeast(fit_margin(over="model", arch=arch, kind="cnn", weights="trained", labels="true",
                                     first_layer="learned", phase="end"), 0.0)) for arch in TABLE3),
    Claim("table3_fit_mean", "Trained CNNs fit the formula on average over the architectures (mean fit margin ≥ 0)",
          paper="r = 0.94 CIFAR-10 (Table 3)",
          check=AtLeast(fit_margin(over="model", kind="cnn", weights="trained", labels="true",
                                   first_layer="learned", arch=TABLE3, phase="end"), 0.0)),
    Claim("trained_filters_whiten", "Trained filters whiten: their outputs' C(δ) is at most 0.7x the "
          "input's (δ = 10 px on 32x32 images, scaled with the image)",
          paper="C(10): raw RGB > 0.5, learned ≈ 0.2 (ratio ≈ 0.4), perfect whitening 0",
          check=AtMost(Value("autocorr_ratio", filters="trained", kind="cnn", first_layer="learned",
                             labels="true", over="seeds"), 0.7),
          gates=_trained_gate("true", 0.5)),
    Claim("random_filters_do_not_whiten", "Random filters do not: their outputs' C(δ) stays above 0.7x the "
          "input's", paper="random filters about the same as the input (ratio ≈ 1)",
          check=AtLeast(Value("autocorr_ratio", filters="random"), 0.7)),
)

CARD = TaskCard(
    name="whitening",
    version="3",  # 3: the paper grid converted to the paper's patch count; null baselines; Stage B/C
    paper=Paper("What do CNNs learn in the first layer, and why? A linear systems perspective",
                "Chowers & Weiss", "ICML 2023", "2206.02454"),
    preset="whitening/embedded",
    ranking_unit=("arch", "width"),  # one leaderboard row per architecture and width the run trains
    metrics=(
        # Pearson r between profiles. The headline fit is of trained filters on the paper's grid, per
        # condition pooled over the seeds (over=seeds; the per-model rows stay in the per-condition table).
        Metric("formula_fit_r", "formula fit r", ".3f", True, columns=("kind", "labels"),
               where={"weights": ("trained",), "grid": ("paper",), "first_layer": ("learned",),
                      "over": ("seeds",)},
               order={"kind": ("cnn", "linear"), "labels": ("true", True)}),
        Metric("fit_margin", "fit margin over the trivial profiles", ".3f", True, columns=("stage", "arch"),
               where={"grid": ("paper",), "weights": ("trained", "pretrained")}),
        Metric("power_r", "r of the best λ^p", ".3f", None, headline=False),
        Metric("lambda_r", "r of e ∝ λ", ".3f", None, headline=False),
        Metric("formula_lambda_distance", "1 − r(formula, λ)", ".3f", None, headline=False),
        Metric("formula_t", "best t", ".0f", None, headline=False),
        Metric("fit_edge", "best t on the grid edge", ".0f", None, headline=False),
        Metric("consistency_r", "consistency r", ".3f", True, columns=("axis",),  # as the claims: learned layers
               where={"kind": ("cnn",), "first_layer": ("learned",), "over": ("pairs",)}),  # the rest: per condition
        # Whitening evidence: C(delta) of each filter bank's outputs over the input's C(delta) (paper,
        # delta = 10 px on 32x32 images: learned ~0.2/0.5+, random ~1, ZCA 0), at task.autocorr_max_delta.
        Metric("autocorr_ratio", "C(δ) / input C(δ)", ".3f", False, columns=("filters",),
               where={"kind": ("cnn",), "first_layer": ("learned",), "over": ("seeds",)},
               order={"filters": ("trained", "random", "zca")}),
        Metric("autocorr", "autocorr C(10)", ".3f", None, columns=("filters",), where={"delta": (10,)}),
        Metric("label_pca_corr", "label-PCA corr", ".3f", False, columns=("labels",),
               order={"labels": ("true", True)}),
        Metric("train_acc", "training accuracy", ".3f", True, headline=False),
        Metric("stop_epoch", "stopping epoch", ".0f", None, headline=False),
        Metric("pretrained_acc", "pretrained accuracy on its 20 images", ".2f", True, headline=False),
        Metric("test_acc", "test accuracy", ".3f", True, headline=False),
    ),
    claims=CLAIMS,
    # Declared with the presets, not chosen from what passed: every claim the embedded study can measure.
    targets={"whitening/embedded": tuple(c.id for c in CLAIMS if not c.id.startswith("table3_")),
             "whitening/table1": ("seed_consistency",),
             "whitening/table2": ("labels_consistency",),
             "whitening/table3": ("table3_fit_mean", *(f"table3_fit_{a}" for a in TABLE3))},
    cannot_test={"whitening/embedded": {
        f"table3_fit_{a}": "the embedded study trains ResNet20 x0.5 on 14x14 Fashion-MNIST only; Table 3's "
                           "architectures on CIFAR-10 are whitening/table3's" for a in (*TABLE3, "mean")}},
    seeds={"whitening/embedded": (0,)},  # one study: its three seeds per label kind are models inside the run
    items={"whitening/embedded": 3},  # the models pooled per condition (seeds 0-2)
)
