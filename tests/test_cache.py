"""One verified cache: every cache kind detects a flipped byte, rebuilds it with a one-line warning
naming the file (or fails under cache.strict=true), and the rebuilt run's metrics equal a clean run's."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from bench.cache import Cache, sha256_file, sidecar
from bench.cli import execute
from bench.errors import CacheError
from bench.store import read_run
from tests.conftest import CONF_DIR
from tests.modality_gap.test_task import TINY as GAP_TINY
from tests.shift.test_task import TINY as SHIFT_TINY
from tests.whitening.test_task import TINY as WHITENING_TINY

TASKS = {"whitening": WHITENING_TINY, "modality_gap": GAP_TINY, "shift": SHIFT_TINY}
# every cache kind: the task that writes it and where its payloads live under the cache dir
KINDS = {
    "patch_pca": ("whitening", "patch_pca/*.safetensors"),
    "trained_model": ("whitening", "whitening/trained/*.safetensors"),
    "clip_weights": ("modality_gap", "modality_gap/clip/*/*.safetensors"),
    "embeddings": ("modality_gap", "modality_gap/embeddings/*.safetensors"),
    "generator_weights": ("shift", "shift/generators/*.safetensors"),
    "generated_shard": ("shift", "shift/datasets/**/shard-*.safetensors"),
}


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _metrics(run_dir: Path) -> dict:
    return {(r["metric"], r["split"], json.dumps(r["params"], sort_keys=True)): r["value"]
            for r in read_run(run_dir)[1]}


def test_cache_verifies_rebuilds_and_is_strict_on_request(tmp_path, caplog):
    cache = Cache(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return {"x": torch.arange(1000.0)}

    first = cache.tensors("kind", {"a": 1}, build)
    assert torch.equal(cache.tensors("kind", {"a": 1}, build)["x"], first["x"]) and len(calls) == 1
    path = cache.path("kind", {"a": 1})
    assert sidecar(path).read_text().split() == [sha256_file(path), path.name]
    assert cache.path("kind", {"a": 2}) != path and cache.path("other", {"a": 1}) != path
    assert Cache(tmp_path, task_version="2").path("kind", {"a": 1}) != path  # a new task version: a new entry
    flip_middle_byte(path)
    with pytest.raises(CacheError, match=str(path)):
        Cache(tmp_path, strict=True).tensors("kind", {"a": 1}, build)
    with caplog.at_level(logging.WARNING, logger="bench.cache"):
        again = cache.tensors("kind", {"a": 1}, build)
    assert len(calls) == 2 and torch.equal(again["x"], first["x"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"cache file {path} does not match its sha256: rebuilding it"]
    sidecar(path).unlink()  # a payload without its sha256 (a crash between the two writes) is never trusted
    cache.tensors("kind", {"a": 1}, build)
    assert len(calls) == 3 and cache.verify(path)


def _run(overrides: list[str]) -> Path:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return execute(compose(config_name="config", overrides=list(overrides)))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """One clean run per task (made when a test first needs it), in its own root: its populated
    cache and its metrics."""
    done: dict[str, tuple[Path, dict]] = {}

    def get(task: str) -> tuple[Path, dict]:
        if task not in done:
            root = tmp_path_factory.mktemp(f"clean_{task}")
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("BENCH_ROOT", str(root))
                done[task] = (root / ".cache" / "bench", _metrics(_run(TASKS[task])))
        return done[task]

    return get


@pytest.mark.integration
@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if KINDS[k][0] == "shift" else k
                                  for k in KINDS])  # shift's runs take ~30 s each: make test-slow
def test_a_flipped_byte_is_detected_and_rebuilt_to_the_same_metrics(kind, clean_run, bench_root, caplog):
    task, pattern = KINDS[kind]
    clean_cache, clean_metrics = clean_run(task)
    cache_dir = bench_root / ".cache" / "bench"
    shutil.copytree(clean_cache, cache_dir)
    victims = sorted(cache_dir.glob(pattern))
    assert victims, f"no {kind} cache under {cache_dir}"
    flip_middle_byte(victims[0])
    with caplog.at_level(logging.WARNING, logger="bench.cache"):
        run_dir = _run(TASKS[task])
    warnings = [r.getMessage() for r in caplog.records if r.name == "bench.cache" and r.levelno >= logging.WARNING]
    assert warnings == [f"cache file {victims[0]} does not match its sha256: rebuilding it"]
    assert Cache(cache_dir).verify(victims[0])  # rebuilt in place
    assert _metrics(run_dir) == clean_metrics
