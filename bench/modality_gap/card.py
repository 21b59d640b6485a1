"""The modality_gap task's card: Chowers et al. (CVPR 2026), the CLIP modality gap and robustness.

The paper (arXiv 2603.29080) gives its findings in words and curves; no exact numbers were available.
Items: every robustness / accuracy / paraphrase row of the paper-mode shift carries its per-image values
(robustness averaged over the noise trials within an image), so intervals come from the images and the
seeds. F = 1 − (1−Rob₁)/(1−Rob₀), the fraction of flips closing the gap removes, is the effect's size.
"""
from bench.card import Metric, Paper, TaskCard
from bench.claims import MIN, AtLeast, AtMost, Claim, Deviation, Difference, Expr, Gate, Monotone, Not, Value

SIGMA2 = (0.005, 0.022, 0.04)  # the paper's Gaussian levels (E||eps||^2 = sigma^2)
F_SIGNIFICANT = 0.20  # this suite's reading of "significantly more robust": a fifth of the flips removed
MIN_FLIPPING = 100  # images whose robustness differs between the compared alphas, below which a verdict is invalid
TRAINED = Gate(Value("acc1", mode="paper", alpha=0.0), at_least=0.5,
               reason="zero-shot acc1 >= 0.5 (a model that trained)")


class Beside:
    """A statistic judged as is, with other statistics' values shown beside it in the verdict's figures
    (here the F that the geometry predicts beside the measured F)."""

    def __init__(self, stat, *shown) -> None:
        self.stat, self.shown = stat, shown

    def __repr__(self) -> str:
        return repr(self.stat)

    def rows(self, rows):
        rows = list(rows)
        return self.stat.rows(rows) + [r for s in self.shown for r in s.rows(rows)]

    def compared(self, rows):
        return self.stat.compared(rows)  # the shown values decide nothing

    def draws(self, sample):
        return self.stat.draws(sample)

    def figure(self, sample) -> str:
        return "; ".join([self.stat.figure(sample)] + [s.figure(sample) for s in self.shown])


def _rob(alpha: float, **where) -> Value:
    return Value("robustness", mode="paper", alpha=alpha, **where)


def _flips_removed(level: float) -> Expr:
    where = {"perturbation": "gaussian", "convention": "norm", "level": level}
    return Expr(lambda r1, r0: 1 - (1 - r1) / (1 - r0), _rob(1.0, **where), _rob(0.0, **where),
                text=f"F(σ²={level:g}) = 1 − (1−Rob₁)/(1−Rob₀)")


def _drop(alpha: float, template) -> Value:
    return Value("accuracy_drop", mode="paper", perturbation="paraphrase", template=template, alpha=alpha)


def _along_gap(template) -> Gate:
    """Closing the gap moves images along g' only: it can change a paraphrase's effect only through the
    paraphrase shift's component along g', which must beat 95% of random directions."""
    share = Value("paraphrase_shift_along_gap", mode="paper", template=template)
    null = Value("paraphrase_shift_along_gap_null", mode="paper", template=template)
    return Gate(Difference(share, null), at_least=0.0,
                reason="the paraphrase shift's share along g' must beat 95% of random directions' shares")


PREDICTED = Value("flip_reduction_predicted", mode="paper")  # F_kappa = 1 - sqrt(1 - kappa)
SINGLE = Not("ensemble")  # the six single-template views (the mean over them)

CLAIMS = (
    Claim("clean_accuracy_unchanged", "Closing the gap (paper eq. 11) leaves clean accuracy exactly unchanged",
          paper="exactly unchanged for every alpha (theorem: shift ⟂ affine span of X)",
          check=AtMost(Deviation("acc1", along="alpha", ref=0.0, mode="paper"), 0.0), fmt=".4g",
          exact=True),  # an identity on the evaluated set: any change falsifies it, whatever the sample
    Claim("clean_predictions_unchanged", "Closing the gap changes no clean prediction, at any alpha and seed",
          paper="NN(y, X + αv) = NN(y, X) for v ⟂ aff(X)",
          check=AtMost(Value("clean_predictions_changed", reduce="max", mode="paper"), 0.0), fmt=".4g",
          exact=True),  # an identity on the evaluated set: any change falsifies it, whatever the sample
    Claim("noise_scale_sane", "At the paper's smallest σ² (0.005, E‖ε‖² = σ²) predictions are stable before "
          "closing the gap (Rob ≥ 0.8; per coordinate it would be at chance)",
          paper="σ² ∈ {0.005, 0.022, 0.040}; robustness well above chance for original models",
          check=AtLeast(_rob(0.0, perturbation="gaussian", convention="norm", level=MIN), 0.8), gates=TRAINED),
    Claim("robustness_rises", "Under Gaussian noise, robustness rises monotonically as the gap closes (alpha 0 → 1)",
          paper="robustness rises monotonically with alpha (σ² = 0.005, 0.022, 0.040)",
          check=Monotone("robustness", along="alpha", span=(0.0, 1.0), each=False, mode="paper",
                         perturbation="gaussian"), gates=TRAINED, min_deciding=MIN_FLIPPING),
    *(Claim(f"flips_removed_{level:g}", f"Closing the gap (alpha 1) removes at least a fifth of the flips at σ² = "
            f"{level:g}: F ≥ {F_SIGNIFICANT:g} (this suite's reading of 'significantly'; the paper gives no figure)",
            paper="robustness rises significantly as the gap closes (no figure available)", kind="magnitude",
            # F_kappa (the F the geometry predicts) and the flipping images are shown beside F
            check=AtLeast(Beside(_flips_removed(level), PREDICTED, Value("gap_geometry", mode="paper"),
                                 Value("flipping_queries", mode="paper", perturbation="gaussian", level=level)),
                          F_SIGNIFICANT),
            gates=TRAINED, min_deciding=MIN_FLIPPING)
      for level in SIGMA2),
    Claim("robustness_rises_quantize", "Under quantisation of the prototypes, robustness rises monotonically as "
          "the gap closes",
          paper="quantisation robustness improves as the gap closes (32-256 bins)",
          check=Monotone("robustness", along="alpha", span=(0.0, 1.0), each=False, mode="paper",
                         perturbation="quantize"), gates=TRAINED, min_deciding=MIN_FLIPPING),
    Claim("paraphrase_drop_original", "The original model loses > 6% accuracy when a prompt template is "
          "paraphrased (mean over the single templates)",
          paper="original models lose > 6% accuracy under template paraphrase",
          check=AtLeast(_drop(0.0, SINGLE), 0.06), gates=TRAINED),
    Claim("paraphrase_drop_original_ensemble", "The original model loses > 6% accuracy when every template of the "
          "prompt ensemble is paraphrased",
          paper="original models lose > 6% accuracy under template paraphrase",
          check=AtLeast(_drop(0.0, "ensemble"), 0.06), gates=TRAINED),
    Claim("paraphrase_drop_shrinks", "Closing the gap (alpha 1) makes the single-template paraphrase drop smaller "
          "(mean over templates)",
          paper="closing the gap reduces the accuracy lost under paraphrase",
          check=AtLeast(Difference(_drop(0.0, SINGLE), _drop(1.0, SINGLE)), 0.0), gates=TRAINED,
          applies=_along_gap(SINGLE)),
    Claim("paraphrase_drop_shrinks_ensemble", "Closing the gap (alpha 1) makes the ensemble's paraphrase drop smaller",
          paper="closing the gap reduces the accuracy lost under paraphrase",
          check=AtLeast(Difference(_drop(0.0, "ensemble"), _drop(1.0, "ensemble")), 0.0), gates=TRAINED,
          applies=_along_gap("ensemble")),
    Claim("gap_forms_from_isotropic_init", "Trained from an isotropic initialisation (‖g‖ ≈ random halves), a gap "
          "opens and stays: ‖g‖ at the end ≥ 2× the random-halves reference",
          paper="a gap appears even from isotropic initialisation and freezes once predictions are doubly stochastic",
          check=AtLeast(Value("train_gap_over_null_final"), 2.0), fmt=".3g",
          applies=Gate(Value("train_gap_over_null_init"), at_most=2.0,
                       reason="training starts isotropic (‖g‖ at init ≤ 2× random halves)")),
    *(Claim(f"gap_orthogonal_{modality}", f"The gap is more orthogonal to the {name} modality's top-5 principal "
            "subspace than a random direction of the same dimension (share of ‖g‖² outside it, minus a random "
            "direction's)",
            paper="g ⟂ both modalities' subspaces (approximately; no figure)",
            check=AtLeast(Difference(Value("gap_orthogonality", modality=modality, k=5),
                                     Value("gap_orthogonality_null", modality=modality, k=5)), 0.0))
      for modality, name in (("query", "image (query)"), ("retrieval", "text (retrieval)"))),
)

_ALL = tuple(c.id for c in CLAIMS)
_NOT_TRAINED_HERE = {"gap_forms_from_isotropic_init": "the model starts from open_clip's default init (each tower "
                     "maps its inputs into a narrow cone: the modalities start ~27x the random-halves gap apart), "
                     "not an isotropic one"}

CARD = TaskCard(
    name="modality_gap",
    # 3: per-image items, noise ratio measured (not a param), per-template paraphrases, F claims, orthogonality nulls
    version="3",
    paper=Paper("Is the modality gap a bug or a feature? A robustness perspective",
                "Chowers, Naparstek, Barzelay & Weiss", "CVPR 2026", "2603.29080"),
    preset="modality_gap/embedded",
    ranking_unit=("clip.name", "clip.pretrained"),  # one leaderboard row per CLIP evaluated
    metrics=(
        # Headline: the paper's post-processing (mode=paper); mode=symmetric ("Mind the Gap") and
        # every other alpha stay in the per-condition table.
        Metric("acc1", "acc@1", ".4g", True, columns=("alpha", "mode"), where={"alpha": (0, 1), "mode": ("paper",)}),
        Metric("gap_norm", "gap ‖g‖", ".3f", None),
        Metric("logit_scale", "logit scale (1/temperature)", ".1f", None),
        Metric("gap_geometry", "κ", ".3f", None),
        Metric("flip_reduction_predicted", "F predicted by κ", ".3f", None),
        Metric("flip_reduction", "F measured", ".3f", True, columns=("perturbation", "level"),
               where={"mode": ("paper",)}),
        Metric("flipping_queries", "images that flip at alpha 0", "d", None, headline=False),
        Metric("robustness", "robustness", ".3f", True, columns=("alpha", "mode", "perturbation"),
               where={"alpha": (0, 1), "mode": ("paper",)},
               order={"perturbation": ("gaussian", "quantize", "paraphrase")}),
        Metric("gap_orthogonality", "gap ⟂ fraction", ".3f", True, headline=False),
        Metric("gap_orthogonality_null", "random direction ⟂ fraction", ".3f", None, headline=False),
        Metric("accuracy_drop", "paraphrase acc drop", ".3f", False, headline=False),
        Metric("paraphrase_shift_along_gap", "paraphrase shift's share along g′", ".3f", None, headline=False),
        Metric("robustness_gain", "robustness gain over alpha 0", ".2g", True, headline=False),
        Metric("clean_predictions_changed", "clean predictions changed", "d", False, headline=False),
        Metric("train_gap_over_null_final", "‖g‖ / random halves (end of training)", ".2f", True, headline=False),
    ),
    claims=CLAIMS,
    # every claim each preset can measure is a target, declared with the preset and its seeds (embedded =
    # the Fashion-MNIST dual encoder, embedded_mnist = the MNIST model); the pretrained CLIPs and the
    # Fashion-MNIST model do not start from an isotropic init.
    targets={"modality_gap/embedded": tuple(i for i in _ALL if i not in _NOT_TRAINED_HERE),
             "modality_gap/embedded_mnist": _ALL,
             "modality_gap/paper": tuple(i for i in _ALL if i not in _NOT_TRAINED_HERE)},
    seeds={"modality_gap/embedded": (0, 1, 2), "modality_gap/embedded_mnist": (0, 1, 2)},
    items={"modality_gap/embedded": 2000, "modality_gap/embedded_mnist": 1000},
    cannot_test={"modality_gap/embedded": _NOT_TRAINED_HERE,
                 "modality_gap/paper": {"gap_forms_from_isotropic_init": "pretrained weights: no training to watch"}},
)
