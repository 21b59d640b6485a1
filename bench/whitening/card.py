"""The whitening task's card: Chowers & Weiss (ICML 2023), first-layer filters vs the linear-CNN formula.

Headline numbers are in /work/shared/papers/whitening.md (Tables 1-3 and the whitening evidence).
"""
from bench.card import Metric, Paper, TaskCard
from bench.claims import AtLeast, AtMost, Claim, Difference, Value

CARD = TaskCard(
    name="whitening",
    version="2",  # 2: embedded_photos crops data.image_size (was always 32x32): every cache key moves
    paper=Paper("What do CNNs learn in the first layer, and why? A linear systems perspective",
                "Chowers & Weiss", "ICML 2023", "2206.02454"),
    groups=("task", "data", "model"),
    preset="whitening/embedded",
    ranking_unit=("arch", "width"),  # one leaderboard row per architecture and width the run trains
    metrics=(
        # Pearson r between profiles. The headline fit is of trained filters (weights=init, the
        # random-init control, stays in the per-condition table). The linear CNN (kind=linear) is
        # the formula's own model, a control kept apart from the trained CNNs (kind=cnn) that rank.
        # The headline is the paper's grid (grid=paper); the wide-grid diagnostic stays per-condition.
        Metric("formula_fit_r", "formula fit r", ".3f", True, columns=("kind", "labels"),
               where={"weights": ("trained",), "grid": ("paper",), "first_layer": ("learned",)},
               order={"kind": ("cnn", "linear"), "labels": ("true", True)}),
        Metric("formula_regime", "whitened share", ".3f", None, headline=False),
        Metric("consistency_r", "consistency r", ".3f", True, columns=("axis",),  # as the claims: learned layers
               where={"kind": ("cnn",), "first_layer": ("learned",)}),  # linear / frozen pairs: per-condition table
        # Whitening evidence: C(delta) of each filter bank's outputs over the input's C(delta) (paper,
        # delta = 10 px on 32x32 images: learned ~0.2/0.5+, random ~1, ZCA 0); the trained CNNs' ratio is
        # the headline. It is logged at delta = task.autocorr_max_delta only: 10 px, or the paper's 10 px
        # scaled to smaller images (2 px on the embedded study's 8x8 crops).
        Metric("autocorr_ratio", "C(δ) / input C(δ)", ".3f", False, columns=("filters",),
               where={"kind": ("cnn",), "first_layer": ("learned",)}, order={"filters": ("trained", "random", "zca")}),
        Metric("autocorr", "autocorr C(10)", ".3f", None, columns=("filters",), where={"delta": (10,)}),
        Metric("label_pca_corr", "label-PCA corr", ".3f", False, columns=("labels",),
               order={"labels": ("true", True)}),
        Metric("test_acc", "test accuracy", ".3f", True, headline=False),
    ),
    claims=(
        # Every CNN claim is on the paper's grid (grid=paper) and on CNNs whose first layer learned;
        # the frozen-first-layer control (first_layer=frozen) has claims of its own.
        Claim("fits_formula", "The best trained CNN's first layer fits the linear-CNN formula (max r ≥ 0.9)",
              paper="r = 0.94 CIFAR-10, 0.90 ImageNet, 0.96 CelebA (Table 3)",
              check=AtLeast(Value("formula_fit_r", reduce="max", kind="cnn", weights="trained", labels="true",
                                  grid="paper", first_layer="learned"), 0.9)),
        Claim("fits_formula_mean", "Trained CNNs fit the formula on average (mean r ≥ 0.85)",
              paper="r = 0.94 CIFAR-10 (Table 3); random init 0.1 ± 0.15",
              check=AtLeast(Value("formula_fit_r", kind="cnn", weights="trained", labels="true", grid="paper",
                                  first_layer="learned"), 0.85)),
        Claim("seed_consistency", "Energy profiles are consistent across seeds (r ≥ 0.9)",
              paper="r = 0.99 CIFAR-10, 0.97 CIFAR-100, 0.99 CelebA (Table 1)",
              check=AtLeast(Value("consistency_r", axis="seed", kind="cnn", first_layer="learned"), 0.9)),
        Claim("random_labels_fit", "With labels randomised the first layer still fits the formula (r ≥ 0.9)",
              paper="true-vs-random r = 0.90 ± 0.02 CIFAR-10 (Table 2)",
              check=AtLeast(Value("formula_fit_r", kind="cnn", weights="trained", labels="random", grid="paper",
                                  first_layer="learned"), 0.9)),
        Claim("linear_random_fit", "The linear CNN with random labels fits its own formula (r ≥ 0.95) with its "
              "best t inside the paper's grid (a best t on the grid's edge is no such fit)",
              paper="the formula is exact for this model when labels are uncorrelated with the PCA (Sec. 3)",
              check=AtLeast(Value("formula_fit_r", kind="linear", weights="trained", labels="random", grid="paper",
                                  edge=False), 0.95)),
        # On small images the paper's grid starts in the formula's e ∝ λ limit (its λ² grows with the
        # patches per image: τλ_1² = 0.4 at t = 10,000 on 8x8 crops, against ≥ 10 on 32x32), where any
        # lightly trained layer fits. A fit means the paper's result only past that limit: a share of
        # the fitted formula's energy past its peak (formula_regime, τλ_i² ≥ 1) of at least 0.1.
        Claim("fits_beyond_lambda_limit", "The trained CNNs' fits are past the e ∝ λ limit (fitted formula's "
              "energy share past its peak, mean ≥ 0.1)",
              paper="best t 10,000 … 4,999,750 at η = 1e-7 on 32x32 CIFAR (τλ_1² ≥ 10: past the limit)",
              check=AtLeast(Value("formula_regime", kind="cnn", weights="trained", labels="true", grid="paper",
                                  first_layer="learned"), 0.1)),
        Claim("random_fits_beyond_lambda_limit", "The random-label fits (CNN and linear model) are past the "
              "e ∝ λ limit too (each one's energy share past the peak ≥ 0.1)",
              paper="random labels trained 75-100 epochs fit the formula as true labels do (Table 2)",
              check=AtLeast(Value("formula_regime", reduce="min", weights="trained", labels="random",
                                  grid="paper", first_layer="learned"), 0.1)),
        Claim("labels_consistency", "True- and random-label profiles agree (r ≥ 0.88)",
              paper="r = 0.90 ± 0.02 CIFAR-10, 0.91 CIFAR-100, 0.96 CelebA (Table 2)",
              check=AtLeast(Value("consistency_r", axis="labels", kind="cnn", labels="true-random"), 0.88)),
        Claim("pca_labels_break_fit", "Labels tied to one PCA direction break the fit: the PCA-label CNN fits "
              "≥ 0.1 worse than the worst true- or random-label CNN",
              paper="labels tied to energy along one PCA direction break the true-vs-random match (Sec. 5)",
              check=AtLeast(Difference(
                  Value("formula_fit_r", reduce="min", kind="cnn", weights="trained", labels=("true", "random"),
                        grid="paper", first_layer="learned"),
                  Value("formula_fit_r", kind="cnn", weights="trained", labels="pca", grid="paper")), 0.1)),
        Claim("frozen_first_layer_control", "A frozen random first layer fits no better than a random init "
              "(frozen minus mean init fit ≤ 0.1)", paper="random init r = 0.1 ± 0.15 (Table 3)",
              check=AtMost(Difference(
                  Value("formula_fit_r", kind="cnn", weights="trained", grid="paper", first_layer="frozen"),
                  Value("formula_fit_r", kind="cnn", weights="init", grid="paper")), 0.1)),
        Claim("trained_filters_whiten", "Trained filters whiten: their outputs' C(δ) is at most 0.7x the "
              "input's (δ = 10 px on 32x32 images, scaled with the image)",
              paper="C(10): raw RGB > 0.5, learned ≈ 0.2 (ratio ≈ 0.4), perfect whitening 0",
              check=AtMost(Value("autocorr_ratio", filters="trained", kind="cnn", first_layer="learned"), 0.7)),
        Claim("random_filters_do_not_whiten", "Random filters do not: their outputs' C(δ) stays above 0.7x the "
              "input's", paper="random filters about the same as the input (ratio ≈ 1)",
              check=AtLeast(Value("autocorr_ratio", filters="random"), 0.7)),
    ),
    # The embedded study (8x8 photograph crops, 94 SGD steps — a length chosen by scanning it: the CNN
    # fits fall to 0.79 by 30 epochs; docs/whitening.md) reproduces the CNN fits on the paper's grid
    # past the e ∝ λ limit, the counterexample and the controls; its targets are those. Its random-label
    # fits (CNN 0.97, linear model 0.99) pass their r bars but sit in the e ∝ λ limit (regime 0.00),
    # so random_fits_beyond_lambda_limit does not reproduce and they are not targets. Not reproduced
    # either: trained filters whiten (at the t the fits find the formula itself predicts a C ratio ~1
    # on these crops) and true-vs-random consistency (0.78-0.88).
    targets={"whitening/embedded": ("fits_formula", "fits_formula_mean", "fits_beyond_lambda_limit",
                                    "seed_consistency", "pca_labels_break_fit", "frozen_first_layer_control",
                                    "random_filters_do_not_whiten"),
             # the paper-protocol presets, one per table
             "whitening/table1": ("seed_consistency",),
             "whitening/table2": ("labels_consistency", "random_labels_fit"),
             "whitening/table3": ("fits_formula",)},
)
