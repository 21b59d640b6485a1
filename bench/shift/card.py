"""The shift task's card: Friedman & Chowers (ECCV-W 2024), Control+Shift.

The paper's curves and findings are in /work/shared/papers/control_shift.md.
"""
from bench.card import Metric, Paper, TaskCard
from bench.claims import MAX, MIN, AtLeast, AtMost, Claim, Difference, Monotone, Not, Value

FAMILIES = {"family": ("overlap", "extend", "truncation")}

CARD = TaskCard(
    name="shift",
    version="1",
    paper=Paper("Control+Shift: generating controllable distribution shifts", "Friedman & Chowers",
                "ECCV 2024 workshop", "2409.07940"),
    groups=("task", "generator", "model"),
    preset="shift/embedded",
    ranking_unit=("arch", "width"),  # one leaderboard row per classifier the run trains
    metrics=(
        # A shift run trains several classifiers: each architecture keeps its own columns.
        # Augmentation on and off are separate columns, never averaged together.
        Metric("auc", "AUC acc-vs-intensity", ".4g", True, columns=("arch", "aug", "family"), order=FAMILIES),
        Metric("accuracy_drop", "accuracy drop", ".4g", False, columns=("arch", "aug", "family"), order=FAMILIES),
        Metric("cas", "CAS", ".4g", True, columns=("arch", "aug")),
        Metric("accuracy", "accuracy", ".4g", True, columns=("family", "intensity"), headline=False),
        Metric("latent_mmd2", "latent MMD² from base (RBF, median bandwidth)", ".3g", False, headline=False),
        Metric("latent_support_out", "share of latents outside the base support", ".3g", False, headline=False),
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
              check=Monotone("accuracy", along="intensity", rising=False, z=2.0, aug=False)),
        Claim("decline_with_augmentation", "Accuracy still declines with data augmentation (aug on, its own curves)",
              paper="the augmentation ablation: the decline persists with augmentation (the paper gives it as a "
                    "figure; no numbers in its text)",
              check=Monotone("accuracy", along="intensity", rising=False, z=2.0, aug=True)),
        Claim("mixer_least_robust", "MLP-Mixer (weakest inductive bias) drops more than the CNNs",
              paper="overlap drop: MLP-Mixer 34.5 vs densenet 5.9, resnet20 14.5 points",
              check=AtLeast(Difference(Value("accuracy_drop", arch="mlp_mixer"),
                                       Value("accuracy_drop", arch=Not("mlp_mixer"))), 0.0, z=2.0)),
        Claim("more_data_no_help", "More training data does not reduce the drop (largest vs smallest train set)",
              paper="the training-set-size ablation: beyond a point more training data does not help (a figure; "
                    "no numbers in its text)",
              check=AtMost(Difference(Value("accuracy_drop", n_train=MIN),
                                      Value("accuracy_drop", n_train=MAX)), 0.0, z=-2.0)),
    ),
    targets={"shift/embedded": ("monotone_decline",),
             # the paper's CIFAR-10 sweeps train its classifier zoo with and without augmentation
             "shift/cifar10_overlap": ("monotone_decline", "decline_with_augmentation", "mixer_least_robust",
                                       "more_data_no_help"),
             "shift/cifar10_extend": ("monotone_decline", "decline_with_augmentation", "mixer_least_robust",
                                      "more_data_no_help"),
             "shift/cifar10_truncation": ("monotone_decline", "decline_with_augmentation", "more_data_no_help"),
             "shift/imagenet64_overlap": ("monotone_decline",),
             "shift/imagenet64_extend": ("monotone_decline",),
             "shift/imagenet64_truncation": ("monotone_decline",)},
)
