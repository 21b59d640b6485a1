"""The closed-form profile is an expectation over label noise: test exactly that.

One trained theory model correlates only moderately with the formula; the root-mean-square
profile over 100 independent label draws matches it at the same t, with no fitting.
"""
import math

import pytest
import torch

from bench.whitening.profile import (PAPER_ETA, energy_profile, fit_paper, fit_wide, formula_profile,
                                     formula_profile_tau, paper_lambda2, pearson)
from tests.whitening.theory import synthetic_tiles, train_theory_model

C, K_SIZE, GRID, N_IMAGES, FILTERS, DRAWS = 3, 3, 2, 4000, 2, 100


@pytest.fixture(scope="module")
def data():
    images, eigvals, eigvecs = synthetic_tiles(N_IMAGES, GRID, C, K_SIZE, seed=0)
    labels = torch.randn(N_IMAGES, DRAWS, generator=torch.Generator().manual_seed(1))
    # The formula's eta is the GD step seen by the summed filter on one patch: eta * K / P.
    eta_formula = 0.1 / eigvals.max().item()
    eta_gd = eta_formula * GRID * GRID / FILTERS
    return images, labels, eigvals, eigvecs, eta_gd, eta_formula


_TRAINED: dict[int, torch.Tensor] = {}


def _profiles(data, steps):
    """Profiles of the 100 label draws after ``steps`` GD steps (trained once per module)."""
    if steps not in _TRAINED:
        images, labels, eigvals, eigvecs, eta_gd, _ = data
        w_init, w_final = train_theory_model(images, labels, K_SIZE, FILTERS, eta_gd, steps)
        _TRAINED[steps] = torch.stack([energy_profile(w_final[r] - w_init[r], eigvecs) for r in range(DRAWS)])
    return _TRAINED[steps]


def _rms_r(profiles, formula, idx):
    return pearson(profiles[idx].pow(2).mean(0).sqrt(), formula)


@pytest.mark.parametrize("steps", [10, pytest.param(200, marks=pytest.mark.integration),
                                   pytest.param(5000, marks=pytest.mark.slow)])  # 200 label draws trained
def test_rms_over_label_draws_matches_formula(data, steps):
    profiles = _profiles(data, steps)
    formula = formula_profile(data[2], data[5], steps)
    singles = [pearson(p, formula) for p in profiles]
    tens = [_rms_r(profiles, formula, slice(10 * i, 10 * i + 10)) for i in range(10)]
    r_100 = _rms_r(profiles, formula, slice(None))
    assert r_100 >= 0.98, f"RMS profile over {DRAWS} draws: r={r_100:.4f}"
    # r rises with the number of label draws averaged over
    assert sum(singles) / DRAWS < sum(tens) / 10 < r_100
    if steps >= 200:  # once the profile has left the e ∝ lambda regime, one run is a poor estimate
        assert sum(singles) / DRAWS < 0.8


@pytest.mark.integration  # 200 label draws trained
def test_single_run_correlates_only_moderately(data):
    profiles = _profiles(data, 200)
    formula = formula_profile(data[2], data[5], 200)
    r_single = pearson(profiles[0], formula)
    assert 0.1 < r_single < 0.8, r_single


def test_long_training_approaches_whitening():
    eigvals = 1.0 / torch.arange(1, 28, dtype=torch.float64) ** 2
    inverse = 1.0 / eigvals.sqrt()
    eta = 0.5 / eigvals.max().item()
    r = [pearson(formula_profile(eigvals, eta, t), inverse) for t in (10, 1_000, 100_000, 10_000_000)]
    assert r == sorted(r) and r[-1] > 0.999, r
    assert pearson(formula_profile(eigvals, eta, 1), eigvals.sqrt()) > 0.999  # small t: e ∝ lambda


@pytest.mark.integration  # 10 and 200 label draws trained
def test_trained_theory_model_approaches_whitening(data):
    # Training longer moves energy from the leading components to the trailing ones (towards
    # e ∝ 1/lambda): the trailing-to-leading energy ratio grows with t, as the formula says.
    ratios = []
    for steps in (10, 200):
        rms = _profiles(data, steps).pow(2).mean(0).sqrt()
        formula = formula_profile(data[2], data[5], steps)
        ratios.append((rms[-5:].mean() / rms[:5].mean()).item())
        assert math.isclose(ratios[-1], (formula[-5:].mean() / formula[:5].mean()).item(), rel_tol=0.2)
    assert ratios[1] > 3 * ratios[0], ratios


def test_small_eta_limit_matches_tau_form():
    eigvals = torch.rand(27, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.01
    eta, t = 1e-5, 30_000
    assert pearson(formula_profile(eigvals, eta, t), formula_profile_tau(eigvals, eta * t)) > 0.99999


def test_wide_fit_recovers_tau_of_a_formula_profile():
    eigvals = 1.0 / torch.arange(1, 28, dtype=torch.float64) ** 2
    fit = fit_wide(formula_profile_tau(eigvals, 50.0), eigvals)
    assert fit.r > 0.999 and math.isclose(fit.tau, 50.0, rel_tol=0.1) and not fit.edge  # grid step is ~8%


def _smooth_patches(n_images=200, size=12, k=3, seed=0):
    """Centred (n_patches, D) patch matrix of smooth random RGB images, and its n_images."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.randn(n_images, 3, size + 4, size + 4, generator=g, dtype=torch.float64),
                                       5, stride=1)
    patches = torch.nn.functional.unfold(x, k).transpose(1, 2).reshape(-1, 3 * k * k)
    return patches - patches.mean(0), n_images


def test_paper_lambda_convention_from_eigenvalues_or_singular_values():
    patches, n_images = _smooth_patches()
    eig = torch.linalg.eigvalsh(torch.cov(patches.T)).flip(0)
    s = torch.linalg.svdvals(patches)
    from_eig = paper_lambda2(n_images, cov_eigvals=eig, n_patches=len(patches))
    torch.testing.assert_close(from_eig, paper_lambda2(n_images, singular_values=s))
    # 32x32 images, 3x3 kernels: eta * lambda_paper^2 = 1e-7 * 900 / 2 * eigval = 4.5e-5 * eigval (the paper's tau)
    lam2 = paper_lambda2(10, cov_eigvals=torch.ones(1), n_patches=10 * 900)
    assert math.isclose(PAPER_ETA * float(lam2), 4.5e-5, rel_tol=1e-3)


def test_paper_fit_recovers_a_planted_t_exactly():
    patches, n_images = _smooth_patches()
    eig = torch.linalg.eigvalsh(torch.cov(patches.T)).flip(0)
    from_eig = paper_lambda2(n_images, cov_eigvals=eig, n_patches=len(patches))
    from_svd = paper_lambda2(n_images, singular_values=torch.linalg.svdvals(patches))
    planted = 1_234_500.0  # on the grid (10,000 + 250 k), well inside it
    profile = formula_profile(from_eig, PAPER_ETA, planted)
    fit = fit_paper(profile, from_eig)
    assert fit.t == planted and fit.r > 1 - 1e-9 and not fit.edge
    assert math.isclose(fit.tau, PAPER_ETA * planted)
    assert fit.lambda_distance > 0  # the fitted formula is recorded with its distance from e ∝ lambda
    # the same profile with lambda from the singular values of the patch matrix: the same t
    assert fit_paper(profile, from_svd).t == planted


def test_paper_fit_flags_a_best_t_on_the_grid_edge():
    patches, n_images = _smooth_patches()
    eig = torch.linalg.eigvalsh(torch.cov(patches.T)).flip(0)
    root = eig.clamp(min=0).sqrt()  # the smallest eigenvalue can round below 0
    fit = fit_paper(root, paper_lambda2(n_images, cov_eigvals=eig, n_patches=len(patches)))  # t -> 0 limit
    assert fit.edge and fit.t == 10_000


def test_random_init_against_trained_profile_is_uncorrelated():
    d = 3 * 7 * 7  # 7x7 RGB: many components, so chance correlations are small
    eigvals = 1.0 / torch.arange(1, d + 1, dtype=torch.float64) ** 2
    eigvecs, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    trained = formula_profile_tau(eigvals, 200.0)
    rs = []
    for seed in range(5):
        init = torch.nn.init.kaiming_normal_(torch.empty(64, 3, 7, 7), generator=torch.Generator().manual_seed(seed))
        rs.append(pearson(energy_profile(init, eigvecs), trained))
    assert max(abs(r) for r in rs) < 0.35, rs


def test_profile_invariant_to_orthogonal_mixing_of_filters():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 3, 3, 3, generator=g)
    eigvecs, _ = torch.linalg.qr(torch.randn(27, 27, dtype=torch.float64, generator=g))
    q, _ = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64, generator=g))
    mixed = (q @ w.reshape(16, -1).double()).reshape(16, 3, 3, 3)
    torch.testing.assert_close(energy_profile(mixed, eigvecs), energy_profile(w, eigvecs))
    assert not torch.allclose(mixed.float(), w)


def test_linear_cnn_head_none_trains_each_filter_on_its_own_target():
    """head='none' (one filter per class) under bench's MSE loss: each filter's gradient is the
    theory model's for its own one-hot target (conv -> global average pool is linear in the mean patch)."""
    from torch.nn import functional as F

    from bench.errors import ModelError
    from bench.models import create_model
    from bench.training import ClassifierModule

    model = create_model("linear_cnn", num_classes=4, in_chans=3, kwargs={"head": "none", "filters": 4})
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, 6, 6, generator=g), torch.randint(0, 4, (32,), generator=g)
    module = ClassifierModule(model, 4, loss="mse")
    assert module(x).shape == (32, 4)
    module._loss(module(x), y).backward()
    mean_patch = F.unfold(x, 3).mean(-1)  # (N, 27) in conv.weight.flatten(1) order
    w = model.first_conv.weight.detach().flatten(1)
    residual = mean_patch @ w.T - F.one_hot(y, 4).float()  # (N, filters): filter c against target c only
    expected = 2 / (32 * 4) * residual.T @ mean_patch
    assert torch.allclose(model.first_conv.weight.grad.flatten(1), expected, atol=1e-6)
    with pytest.raises(ModelError, match="one filter per class: 64 filters for 10 classes"):
        create_model("linear_cnn", num_classes=10, kwargs={"head": "none"})
