"""Model loading (local checkpoints, unknown and unavailable tags), embedding extraction with
index tracking, and the safetensors cache's corruption and staleness checks."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.errors import ModelError
from bench.modality_gap.clip_models import SMALL_CLIP, load_clip
from bench.modality_gap.datasets import load_eval_data
from bench.modality_gap.embeddings import cache_path, cached, extract

CPU = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}


@pytest.fixture(scope="module")
def small_clip():
    torch.manual_seed(0)
    return load_clip(SMALL_CLIP, None)


def _direct(bundle, images):
    with torch.no_grad():
        x = torch.stack([bundle.preprocess(im) for im in images])
        e = bundle.model.encode_image(x)
    return e / e.norm(dim=-1, keepdim=True)


def test_extraction_matches_direct_encoding_in_order(small_clip):
    data = load_eval_data("mnist", n=37)  # 37 rows in batches of 8: a ragged last batch
    got = extract(small_clip.model, "image", data.images, small_clip.preprocess, trainer_kwargs=CPU, batch_size=8)
    assert got.shape == (37, 64)
    assert torch.allclose(got, _direct(small_clip, data.images), atol=1e-5)


def test_saved_local_checkpoint_gives_identical_embeddings(small_clip, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in small_clip.model.state_dict().items()}, str(path))
    reloaded = load_clip(SMALL_CLIP, str(path))
    images = load_eval_data("mnist", n=16).images
    assert torch.equal(_direct(reloaded, images), _direct(small_clip, images))
    tokens = small_clip.tokenizer(["a photo of the number seven.", "a handwritten 7."])
    with torch.no_grad():
        assert torch.equal(reloaded.model.encode_text(tokens), small_clip.model.encode_text(tokens))


@pytest.mark.parametrize("name,tag,match", [
    ("ViT-B-16", "no-such-tag", "unknown pretrained tag ViT-B-16/no-such-tag"),
    ("ViT-Q-99", "openai", "unknown open_clip architecture"),
    ("ViT-B-16", "/nowhere/weights.safetensors", "does not exist"),
])
def test_bad_model_requests_fail_fast_and_clearly(name, tag, match):
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=match):
        load_clip(name, tag)
    assert time.monotonic() - t0 < 1.0


def test_uncached_tag_offline_fails_within_a_second(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="ViT-B-16/openai are not cached.*clip.pretrained=/path"):
        load_clip("ViT-B-16", "openai", cache_dir=str(tmp_path))
    assert time.monotonic() - t0 < 1.0


def test_cache_reuses_and_rebuilds_corrupt_or_stale_files(tmp_path):
    calls = []

    def build(value):
        def _b():
            calls.append(value)
            return {"images": torch.full((3, 2), float(value))}
        return _b

    key = {"model": "m", "weights": "sha:1", "dataset": "d"}
    first = cached(tmp_path, key, build(1))
    again = cached(tmp_path, key, build(2))
    assert calls == [1] and torch.equal(first["images"], again["images"])
    path = cache_path(tmp_path, key)
    path.write_bytes(path.read_bytes()[:40])  # truncated: corrupt
    assert cached(tmp_path, key, build(3))["images"][0, 0] == 3 and calls == [1, 3]
    # A file at this key's path that was written for another key is stale.
    other = {**key, "weights": "sha:2"}
    cached(tmp_path, other, build(4))
    cache_path(tmp_path, other).replace(path)
    assert cached(tmp_path, key, build(5))["images"][0, 0] == 5 and calls == [1, 3, 4, 5]


DDP_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from bench.modality_gap.clip_models import SMALL_CLIP, load_clip
from bench.modality_gap.datasets import load_eval_data
from bench.modality_gap.embeddings import extract
torch.manual_seed(0)
b = load_clip(SMALL_CLIP, None)
data = load_eval_data("mnist", n=21)
out = extract(b.model, "image", data.images, b.preprocess, batch_size=4,
              trainer_kwargs={"accelerator": "cpu", "devices": 2, "strategy": "ddp", "enable_progress_bar": False})
import os
if os.environ.get("LOCAL_RANK", "0") == "0":
    torch.save(out, sys.argv[1])
"""


@pytest.mark.slow
def test_two_process_ddp_extraction_has_no_duplicates_or_drops(tmp_path, small_clip):
    script = tmp_path / "ddp_extract.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "out.pt"
    subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=300, cwd=Path(__file__).parents[2])
    got = torch.load(out)
    torch.manual_seed(0)
    ref = load_clip(SMALL_CLIP, None)
    assert got.shape == (21, 64)  # 21 rows over 2 ranks: the sampler pads one duplicate, dropped here
    assert torch.allclose(got, _direct(ref, load_eval_data("mnist", n=21).images), atol=1e-5)


def test_isotropic_init_centres_both_towers(small_clip):
    """centre_towers shifts each tower's last LayerNorm bias so its output has zero mean on the probe."""
    import copy

    from bench.modality_gap.contrastive import centre_towers

    model = copy.deepcopy(small_clip.model)
    data = load_eval_data("mnist", n=64)
    images = torch.stack([small_clip.preprocess(im) for im in data.images])
    tokens = small_clip.tokenizer([f"a handwritten {int(c)}." for c in data.labels])
    with torch.no_grad():
        before = model.encode_image(images).mean(0).norm(), model.encode_text(tokens).mean(0).norm()
        centre_towers(model, images, tokens)
        after = model.encode_image(images).mean(0).norm(), model.encode_text(tokens).mean(0).norm()
    assert before[0] > 0.1 and before[1] > 0.1
    assert after[0] < 1e-4 * before[0] and after[1] < 1e-4 * before[1]
