"""The whitening task's card: Chowers & Weiss (ICML 2023), first-layer filters vs the linear-CNN formula.

Headline numbers are in /work/shared/papers/whitening.md (Tables 1-3 and the whitening evidence).
"""
from bench.card import Metric, Paper, TaskCard
from bench.claims import AtLeast, AtMost, Claim, Value

CARD = TaskCard(
    name="whitening",
    version="1",
    paper=Paper("What do CNNs learn in the first layer, and why? A linear systems perspective",
                "Chowers & Weiss", "ICML 2023", "2206.02454"),
    groups=("task", "data", "model"),
    preset="whitening/embedded",
    metrics=(
        # Pearson r between profiles. The headline fit is of trained filters (weights=init, the
        # random-init control, stays in the per-condition table). The linear CNN (kind=linear) is
        # the formula's own model, a control kept apart from the trained CNNs (kind=cnn) that rank.
        # The headline is the paper's grid (grid=paper); the wide-grid diagnostic stays per-condition.
        Metric("formula_fit_r", "formula fit r", ".3f", True, columns=("kind", "labels"),
               where={"weights": ("trained",), "grid": ("paper",)},
               order={"kind": ("cnn", "linear"), "labels": ("true", True)}),
        Metric("formula_regime", "whitened share", ".3f", None, headline=False),
        Metric("consistency_r", "consistency r", ".3f", True, columns=("axis",),
               where={"kind": ("cnn",)}),  # pairs of linear CNNs stay in the per-condition table
        # Whitening evidence: C(10) of each filter bank's outputs over the input's C(10) (paper:
        # learned ~0.2/0.5+, random ~1, ZCA 0); the trained CNNs' ratio is the headline.
        Metric("autocorr_ratio", "C(10) / input C(10)", ".3f", False, columns=("filters",),
               where={"delta": (10,), "kind": ("cnn",)}, order={"filters": ("trained", "random", "zca")}),
        Metric("autocorr", "autocorr C(10)", ".3f", None, columns=("filters",), where={"delta": (10,)}),
        Metric("label_pca_corr", "label-PCA corr", ".3f", False, columns=("labels",),
               order={"labels": ("true", True)}),
        Metric("test_acc", "test accuracy", ".3f", True, headline=False),
    ),
    claims=(
        Claim("fits_formula", "A trained CNN's first layer fits the linear-CNN formula (r ≥ 0.9)",
              paper="r = 0.94 CIFAR-10, 0.90 ImageNet, 0.96 CelebA (Table 3)",
              check=AtLeast(Value("formula_fit_r", kind="cnn", weights="trained", labels="true", grid="paper"), 0.9)),
        Claim("seed_consistency", "Energy profiles are consistent across seeds (r ≥ 0.9)",
              paper="r = 0.99 CIFAR-10, 0.97 CIFAR-100, 0.99 CelebA (Table 1)",
              check=AtLeast(Value("consistency_r", axis="seed", kind="cnn"), 0.9)),
        Claim("random_labels_fit", "With labels randomised the first layer still fits the formula (r ≥ 0.9)",
              paper="true-vs-random r = 0.90 ± 0.02 CIFAR-10 (Table 2)",
              check=AtLeast(Value("formula_fit_r", kind="cnn", weights="trained", labels="random", grid="paper"), 0.9)),
        Claim("labels_consistency", "True- and random-label profiles agree (r ≥ 0.88)",
              paper="r = 0.90 ± 0.02 CIFAR-10, 0.91 CIFAR-100, 0.96 CelebA (Table 2)",
              check=AtLeast(Value("consistency_r", axis="labels", kind="cnn"), 0.88)),
        Claim("trained_filters_whiten", "Trained filters whiten: their outputs' C(10) is below the input's "
              "(ratio < 1)", paper="C(10): raw RGB > 0.5, learned ≈ 0.2 (ratio ≈ 0.4), perfect whitening 0",
              check=AtMost(Value("autocorr_ratio", filters="trained", kind="cnn", delta=10), 1.0)),
    ),
    targets={"whitening/embedded": ("seed_consistency", "trained_filters_whiten")},
)
