"""The streaming patch PCA against the textbook computation on materialised patches."""
import pytest
import torch
from torch.nn import functional as F

from bench.whitening.patch_pca import patch_pca


def _images(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.rand(n, 3, 20, 20, generator=g, dtype=torch.float64), 3, stride=1)
    return x * 4 + 2  # far from zero mean: the uncentred sums must still be accurate


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_streaming_matches_materialised_cov_eigh(dtype, tol):
    x = _images()
    patches = F.unfold(x, 3).transpose(1, 2).reshape(-1, 27)
    vals, vecs = torch.linalg.eigh(torch.cov(patches.T))
    vals, vecs = vals.flip(0), vecs.flip(1)
    pca = patch_pca((x[i:i + 7] for i in range(0, len(x), 7)), 3, progress=False, dtype=dtype)
    assert pca.n_patches == len(patches) and pca.n_images == len(x)
    torch.testing.assert_close(pca.mean, patches.mean(0), rtol=0, atol=tol * 10)
    torch.testing.assert_close(pca.eigvals, vals, rtol=tol * 10, atol=tol * vals[0].item())
    # leading, well-separated eigenvectors agree up to sign
    dots = (pca.eigvecs[:, :5] * vecs[:, :5]).sum(0).abs()
    torch.testing.assert_close(dots, torch.ones(5, dtype=torch.float64), rtol=0, atol=tol * 100)


def test_eigenvectors_are_in_conv_weight_order():
    """Convolving with u_i as a filter gives each patch's coefficient on u_i."""
    x = _images(8)
    pca = patch_pca([x], 3, progress=False)
    u = pca.eigvecs[:, 1]
    conv = F.conv2d(x, u.reshape(1, 3, 3, 3)).flatten()
    coeffs = F.unfold(x, 3).transpose(1, 2).reshape(-1, 27) @ u
    torch.testing.assert_close(conv, coeffs)


def test_leave_one_out_is_the_pca_of_the_other_images():
    from bench.whitening.patch_pca import leave_one_out

    x = _images(n=6)
    for i, pca in enumerate(leave_one_out(x, 3)):
        direct = patch_pca([torch.cat([x[:i], x[i + 1:]])], 3, progress=False)
        assert pca.n_images == 5 and pca.n_patches == direct.n_patches
        torch.testing.assert_close(pca.eigvals, direct.eigvals, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(pca.mean, direct.mean, rtol=1e-10, atol=1e-12)
