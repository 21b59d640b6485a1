"""task.rng=reference: the reference script's anchors, labels, noise and latents, bit for bit.

The expected values are computed here from the published procedure of Control+Shift's
``generate_dist_shift.py`` (written out in these tests, not bench's code): numpy's and torch's
*global* generators seeded with the split's seed, labels ``np.random.choice(10, N)``, noise
``torch.randn(100, d)`` per generation batch of 100, latents in float32 per batch."""
import json

import numpy as np
import pytest
import torch

from bench.errors import ConfigError
from bench.shift.dataset import SetSpec, ShardedDatasets, to_uint8
from bench.shift.families import Shift
from bench.shift.rng import REFERENCE_ANCHOR_SEED, REFERENCE_SEEDS, draw_anchors, reference_split

BATCH = 100  # the script's --batch default


@pytest.fixture
def global_rngs():
    """Restore numpy's and torch's global generators after the test touched them."""
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    np.random.set_state(np_state)


def _anchors(d):
    """np.random.seed(45678), then two randn(d) draws, each cast to float32 (the script's targets)."""
    np.random.seed(45678)
    a1 = torch.from_numpy(np.random.randn(d)).float()
    a2 = torch.from_numpy(np.random.randn(d)).float()
    return a1, a2


def _toward(target, zs, t):
    """The script's spherical interpolation of each row of zs with target (1, d), float32."""
    cos = torch.sum(zs * target, dim=1) / (torch.norm(zs, dim=1) * torch.norm(target, dim=1))
    w = torch.acos(cos)[:, None]
    sw = torch.sin(w)
    return torch.sin((1 - t) * w) * target / sw + torch.sin(t * w) * zs / sw


def _latents(exp, value, zs, a1, a2):
    """z_func of the script for one batch of noise zs: --exp trunc / extend / overlap, --value an int."""
    t = value / 100
    if exp == "truncation":
        return zs * t
    if exp == "extend":
        return _toward(a1[None], zs, t)
    w = torch.acos(torch.sum(a1 * a2) / (torch.norm(a1) * torch.norm(a2)))
    center = torch.sin((1 - t) * w) * a1 / torch.sin(w) + torch.sin(t * w) * a2 / torch.sin(w)
    return _toward(center[None], zs, 50 / 100)


def _split(seed, n, d, exp=None, value=None):
    """One split as the script draws it: seeds both global generators, labels first (numpy), then one
    noise batch (and its latents) at a time (torch)."""
    a1, a2 = _anchors(d)  # the script draws them under a saved-and-restored numpy state
    torch.manual_seed(seed)
    np.random.seed(seed)
    labels = torch.from_numpy(np.random.choice(10, n).astype(int))
    noise, latents = [], []
    for _ in range(0, n, BATCH):
        zs = torch.randn(BATCH, d)
        noise.append(zs)
        if exp:
            latents.append(_latents(exp, value, zs, a1, a2))
    return labels, torch.cat(noise), torch.cat(latents) if exp else None


@pytest.mark.parametrize("d", [16, 3072, 12288])
def test_reference_anchors_are_numpy_seed_45678(global_rngs, d):
    a1, a2 = _anchors(d)
    anchors = draw_anchors(d, seed=1234, rng="reference")  # bench's anchor seed is not used
    assert anchors.dtype == torch.float64
    assert torch.equal(anchors[0].float(), a1) and torch.equal(anchors[1].float(), a2)
    assert torch.equal(anchors, torch.stack([a1, a2]).double())  # exact float32 values
    assert not torch.equal(draw_anchors(d, seed=1234), anchors)


def test_reference_split_seeds():
    assert REFERENCE_SEEDS == {"train": 12345, "val": 54321, "test": 0}
    with pytest.raises(ConfigError, match="task.rng"):
        draw_anchors(8, 0, "numpy")
    with pytest.raises(ConfigError, match="multiple of 100"):
        reference_split(0, 250, 8, 10)


@pytest.mark.parametrize("n, d", [(500, 16), (5000, 16), (500, 3072), (5000, 3072)])
def test_labels_and_noise_equal_the_scripts_global_draws(global_rngs, n, d):
    for seed in (0, 12345):
        labels, noise, _ = _split(seed, n, d)
        eps, y = reference_split(seed, n, d, 10)
        assert torch.equal(y, labels) and torch.equal(eps, noise)
    # the paper's reading: numpy holds the labels, torch only the noise (a torch label draw would agree at chance)
    assert (torch.randint(10, (n,), generator=torch.Generator().manual_seed(0)) == y).float().mean() < 0.2


SWEEPS = {"truncation": (0.9, 1.1), "extend": (0.5, 0.7, 1.0), "overlap": (0.0, 0.4)}


@pytest.mark.parametrize("n, d", [(500, 16), (5000, 16), (500, 3072),
                                  pytest.param(5000, 3072, marks=pytest.mark.integration)])  # the paper's size
def test_latents_equal_the_scripts_float32_latents(global_rngs, tmp_path, n, d):
    """Every shard's latents (bench's float32 reference maths) equal the script's, batch by batch."""

    class Stub:  # only the latent dimension and classes are read to draw latents
        id, weights_hash, latent_dim, num_classes = "stub", "0" * 64, d, 10

    anchors = draw_anchors(d, REFERENCE_ANCHOR_SEED, "reference")
    store = ShardedDatasets(Stub(), tmp_path, anchors, REFERENCE_ANCHOR_SEED, shard_size=n // 5, rng="reference")
    for family, values in SWEEPS.items():
        for value in values:
            labels, _, latents = _split(0, n, d, family, round(value * 100))
            spec = SetSpec("test", Shift(family, value), n, 0)
            shards = [store.latents(spec, k) for k in range(len(store.shard_counts(n)))]
            assert torch.equal(torch.cat([z for z, _ in shards]), latents), (family, value)
            assert torch.equal(torch.cat([y for _, y in shards]), labels)


def test_reference_keys_follow_the_scripts_experiments():
    assert Shift("overlap", 0.0).reference_key == "ref-overlap-0" != Shift("extend", 0.5).reference_key
    assert Shift("truncation", 1.05).reference_key == "ref-truncation-105"
    with pytest.raises(ConfigError, match="whole percent"):
        Shift("extend", 0.625).reference_key


def test_reference_sets_decode_the_reference_noise_and_labels(tiny_vae, tmp_path, global_rngs):
    """A reference set's images are G(z, y) of exactly the script's latents and labels."""
    d, n = tiny_vae.latent_dim, 300
    anchors = draw_anchors(d, REFERENCE_ANCHOR_SEED, "reference")
    store = ShardedDatasets(tiny_vae, tmp_path, anchors, REFERENCE_ANCHOR_SEED, shard_size=200, batch_size=70,
                            progress=False, rng="reference")
    specs = [SetSpec("test", Shift("overlap", s), n, 0) for s in (0.0, 0.4)]
    specs.append(SetSpec("train", Shift("overlap", 0.0), n, 12345))
    store.build(specs)
    for spec in specs:
        labels, _, z = _split(spec.seed, n, d, "overlap", round(spec.shift.value * 100))
        images, y = store.load(spec)
        assert torch.equal(y, labels)
        assert torch.equal(images, to_uint8(tiny_vae.decode(z, labels)))
        manifest = json.loads((store.path(spec) / "manifest.json").read_text())
        assert manifest["seeds"] == {"eps_and_labels": spec.seed, "anchors": 45678, "rng": "reference"}
        assert manifest["counts"]["per_class"] == torch.bincount(labels, minlength=10).tolist()
    assert "reference-anchors45678" in str(store.path(specs[0]))
    with pytest.raises(ConfigError, match="shard_size"):
        ShardedDatasets(tiny_vae, tmp_path, anchors, REFERENCE_ANCHOR_SEED, shard_size=250, rng="reference")
