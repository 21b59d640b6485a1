"""task.rng=reference: the reference scripts' anchors, labels and noise, reproduced exactly.

The expected values are computed here by the described procedure itself, with numpy's and
torch's *global* generators (np.random.seed / torch.manual_seed), not by bench's code."""
import json

import numpy as np
import pytest
import torch

from bench.errors import ConfigError
from bench.shift.dataset import SetSpec, ShardedDatasets, to_uint8
from bench.shift.families import Shift
from bench.shift.rng import REFERENCE_ANCHOR_SEED, REFERENCE_SEEDS, draw_anchors


@pytest.fixture
def global_rngs():
    """Restore numpy's and torch's global generators after the test touched them."""
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    np.random.set_state(np_state)


def _reference_anchors(d):
    np.random.seed(45678)
    a1 = np.random.randn(d).astype(np.float32)
    a2 = np.random.randn(d).astype(np.float32)
    return a1, a2


def _reference_split(seed, n, d, k=10):
    torch.manual_seed(seed)
    labels = torch.randint(k, (n,))  # labels before noise
    return torch.randn(n, d), labels


@pytest.mark.parametrize("d", [3072, 12288])
def test_reference_anchors_are_numpy_seed_45678(global_rngs, d):
    a1, a2 = _reference_anchors(d)
    anchors = draw_anchors(d, seed=1234, rng="reference")  # bench's anchor seed is not used
    assert anchors.dtype == torch.float64
    assert np.array_equal(anchors[0].float().numpy(), a1) and np.array_equal(anchors[1].float().numpy(), a2)
    assert np.array_equal(anchors.numpy(), np.stack([a1, a2]).astype(np.float64))  # exact float32 values
    assert not torch.equal(draw_anchors(d, seed=1234), anchors)


def test_reference_split_seeds():
    assert REFERENCE_SEEDS == {"train": 12345, "val": 54321, "test": 0}
    with pytest.raises(ConfigError, match="task.rng"):
        draw_anchors(8, 0, "numpy")


def test_reference_sets_decode_the_reference_noise_and_labels(tiny_vae, tmp_path, global_rngs):
    """Every shard of a reference set is the matching slice of one whole-split draw, and the
    decoded images are G(shift(eps), y) of exactly those eps and labels."""
    d, n = tiny_vae.latent_dim, 25
    anchors = draw_anchors(d, REFERENCE_ANCHOR_SEED, "reference")
    store = ShardedDatasets(tiny_vae, tmp_path, anchors, REFERENCE_ANCHOR_SEED, shard_size=10, batch_size=7,
                            progress=False, rng="reference")
    specs = [SetSpec("test", Shift("overlap", s), n, 0) for s in (0.0, 0.4)]
    specs.append(SetSpec("train", Shift("overlap", 0.0), n, 12345))
    store.build(specs)
    for spec in specs:
        eps, labels = _reference_split(spec.seed, n, d)
        images, y = store.load(spec)
        assert torch.equal(y, labels)
        z = spec.shift.latents(eps, anchors.float()).float()
        assert torch.equal(images, to_uint8(tiny_vae.decode(z, labels)))
        manifest = json.loads((store.path(spec) / "manifest.json").read_text())
        assert manifest["seeds"] == {"eps_and_labels": spec.seed, "anchors": 45678, "rng": "reference"}
        assert manifest["counts"]["per_class"] == torch.bincount(labels, minlength=10).tolist()
    assert "reference-anchors45678" in str(store.path(specs[0]))
