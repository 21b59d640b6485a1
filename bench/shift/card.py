"""The shift task's card: Friedman & Chowers (ECCV-W 2024), Control+Shift.

The paper (arXiv 2409.07940): its curves and findings are the claims below.
"""
from bench.card import Metric, Paper, TaskCard
from bench.claims import MAX, MIN, AtLeast, AtMost, Claim, Difference, Gate, Monotone, Not, Value, Within

FAMILIES = {"family": ("overlap", "extend", "truncation")}
ALL = ("monotone_decline", "decline_with_augmentation", "mixer_least_robust", "more_data_no_help")
# The base condition every architecture trains at: no augmentation, all of the training set.
BASE = {"aug": False, "n_train": MAX}
# Validity gates, declared with the card (not from what passed): the base-distribution validation
# accuracy of every condition a claim reads. A decline is judged on classifiers that trained (5x
# chance, 10 classes); drops are compared only between classifiers that reach 80% (the paper's
# weakest CIFAR-10 classifier, the MLP-Mixer, has 84%), so no classifier "drops less" because it had
# less to lose.
TRAINED, COMPARED = 0.5, 0.8
# more_data_no_help: "no help" read as "a 4x larger training set shrinks the drop by less than 3
# accuracy points" (the paper gives a figure only). mixer_least_robust needs at least 20 images whose
# compared drops differ (an effect several images decide); a "no difference" claim needs none.
NO_HELP, MIN_DECIDING = 0.03, 20


# The paper's drops (accuracy, base → strongest intensity, read from its figure's end points), each a
# magnitude claim on the paper's protocol only (its full-width classifiers: width 1): (family, arch,
# drop, figure). Within ±TOLERANCE, the suite's reading of "the same size" (the paper gives one run
# per classifier, no spread).
PAPER_DROPS = (("overlap", "resnet20", 0.145, "91.7 → 77.2"), ("overlap", "mlp_mixer", 0.345, "84.1 → 49.6"),
               ("extend", "resnet20", 0.173, "92.0 → 74.7"), ("extend", "mlp_mixer", 0.518, "83.9 → 32.1"),
               ("truncation", "resnet20", 0.435, "90.8 → 47.3"))
TOLERANCE = 0.05
CIFAR = {"overlap": "shift/cifar10_overlap", "extend": "shift/cifar10_extend", "truncation": "shift/cifar10_truncation"}


def _trained(floor: float, **where) -> Gate:
    """The gate: every condition's base accuracy (generated validation set) is at least ``floor``."""
    return Gate(Value("base_accuracy", reduce="min", **where), at_least=floor,
                reason=f"every classifier it compares reaches base accuracy {floor:g}")


CARD = TaskCard(
    name="shift",
    version="2",
    paper=Paper("Control+Shift: generating controllable distribution shifts", "Friedman & Chowers",
                "ECCV 2024 workshop", "2409.07940"),
    preset="shift/embedded",
    ranking_unit=("arch", "width"),  # one leaderboard row per classifier the run trains
    metrics=(
        # A shift run trains several classifiers: each architecture keeps its own columns.
        # Augmentation on and off are separate columns, never averaged together.
        Metric("auc", "AUC acc-vs-intensity", ".4g", True, columns=("arch", "aug", "family"), order=FAMILIES),
        Metric("accuracy_drop", "accuracy drop", ".4g", False, columns=("arch", "aug", "family"), order=FAMILIES),
        Metric("cas", "CAS", ".4g", True, columns=("arch", "aug")),
        Metric("accuracy", "accuracy", ".4g", True, columns=("family", "intensity"), headline=False),
        Metric("base_accuracy", "base accuracy (generated validation set)", ".4g", True, columns=("arch", "aug"),
               headline=False),
        Metric("latent_mmd2", "latent MMD² from base (RBF, median bandwidth)", ".3g", False, headline=False),
        Metric("latent_support_out", "share of latents outside the base support", ".3g", False, headline=False),
        Metric("latent_support_out_knn", "share of latents outside the base's k-NN support", ".3g", False,
               headline=False),
        Metric("latent_kl_gauss", "latent KL, Gaussian approximation (moment-matched)", ".4g", False,
               headline=False),
        Metric("latent_kl_gauss_mc", "latent KL, Gaussian approximation, MC check", ".4g", False, headline=False),
    ),
    claims=(
        Claim("monotone_decline", "Accuracy declines monotonically with shift intensity, per family and classifier",
              paper="monotone everywhere (accuracy %, first → last intensity): CIFAR overlap θ 0 → 0.4π densenet "
                    "94.6 → 88.7, vgg19-bn 94.2 → 84.0, resnet20 91.7 → 77.2, resnet50 87.5 → 69.0, MLP-Mixer "
                    "84.1 → 49.6; extend θ 0 → 0.5π densenet 94.7 → 83.4, resnet20 92.0 → 74.7, MLP-Mixer "
                    "83.9 → 32.1; truncation R 0.9 → 1.0 → 1.1 densenet 93.7 → 82.6 → 54.0, resnet20 "
                    "90.8 → 76.4 → 47.3; ImageNet-64 truncation R 0.9 → 1.05 vgg19-bn 84.7 → 26.5",
              check=Monotone("accuracy", along="intensity", rising=False, **BASE),
              gates=_trained(TRAINED, **BASE)),
        Claim("decline_with_augmentation", "Accuracy still declines with data augmentation (aug on, its own curves)",
              paper="the augmentation ablation: the decline persists with augmentation (the paper gives it as a "
                    "figure; no numbers in its text)",
              check=Monotone("accuracy", along="intensity", rising=False, aug=True, n_train=MAX),
              gates=_trained(TRAINED, aug=True, n_train=MAX)),
        Claim("mixer_least_robust", "MLP-Mixer (weakest inductive bias) drops more than the CNNs (paired drop, "
                                    "mean over the families)",
              paper="overlap drop: MLP-Mixer 34.5 vs densenet 5.9, resnet20 14.5 points",
              check=AtLeast(Difference(Value("accuracy_drop", arch="mlp_mixer", **BASE),
                                       Value("accuracy_drop", arch=Not("mlp_mixer"), **BASE)), 0.0),
              gates=_trained(COMPARED, **BASE), min_deciding=MIN_DECIDING),
        Claim("more_data_no_help", f"More training data does not reduce the drop: the MLP-Mixer's drop with its "
                                   f"smallest training set exceeds its drop with the largest by less than "
                                   f"{NO_HELP:g} (the suite's reading; same optimizer steps)",
              paper="the training-set-size ablation: beyond a point more training data does not help (a figure; "
                    "no numbers in its text)",
              check=AtMost(Difference(Value("accuracy_drop", arch="mlp_mixer", aug=False, n_train=MIN),
                                      Value("accuracy_drop", arch="mlp_mixer", aug=False, n_train=MAX)), NO_HELP),
              gates=(_trained(COMPARED, arch="mlp_mixer", aug=False, n_train=MIN),
                     _trained(COMPARED, arch="mlp_mixer", aug=False, n_train=MAX))),
        *(Claim(f"{family}_drop_{arch}", f"The {arch} drop along CIFAR-10 {family} has the paper's size (within "
                                         f"{TOLERANCE:g})",
                paper=f"CIFAR-10 {family}, {arch}: {figure} (drop {drop:g})", kind="magnitude", paper_value=drop,
                check=Within(Value("accuracy_drop", family=family, arch=arch, width=1.0, **BASE), drop - TOLERANCE,
                             drop + TOLERANCE),
                gates=_trained(TRAINED, arch=arch, width=1.0, **BASE))
          for family, arch, drop, figure in PAPER_DROPS),
    ),
    targets={"shift/embedded": ALL,
             # the paper's sweeps train its classifier zoo (the Mixer included on CIFAR-10) with and without
             # augmentation, at three training-set sizes
             **{preset: ALL + tuple(f"{f}_drop_{a}" for f, a, *_ in PAPER_DROPS if f == family)
                for family, preset in CIFAR.items()},
             "shift/imagenet64_overlap": ("monotone_decline",),
             "shift/imagenet64_extend": ("monotone_decline",),
             "shift/imagenet64_truncation": ("monotone_decline",)},
    seeds={"shift/embedded": (0, 1, 2)},
    items={"shift/embedded": 500},
    cannot_test={
        "shift/embedded": {f"{f}_drop_{a}": "the paper's drops are sizes on its protocol (EDM CIFAR-10, 50k images, "
                                            "its classifiers); the embedded VAE digits have no paper counterpart"
                           for f, a, *_ in PAPER_DROPS},
        **{preset: {"decline_with_augmentation": "the ImageNet-64 presets train without augmentation (the paper's "
                                                 "ablations are on CIFAR-10)",
                    "mixer_least_robust": "the paper's ImageNet-64 classifiers include no MLP-Mixer",
                    "more_data_no_help": "the ImageNet-64 presets train one training-set size"}
           for preset in ("shift/imagenet64_overlap", "shift/imagenet64_extend", "shift/imagenet64_truncation")}},
)
