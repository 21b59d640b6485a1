"""Provenance of a run: code version, library versions, hardware, config hash."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# Keys that change where and how a run is recorded but not what it computes.
HASH_EXCLUDED_KEYS = ("paths", "logger", "skip_existing", "hydra", "run_name", "trainer_ui", "cache")

_DISTRIBUTIONS = {
    "torch": "torch",
    "lightning": "lightning",
    "hydra": "hydra-core",
    "open_clip": "open_clip_torch",
    "diffusers": "diffusers",
    "bench": "bench",
}


def config_hash(config: dict[str, Any], exclude: tuple[str, ...] = HASH_EXCLUDED_KEYS,
                task_version: str | None = None) -> str:
    """sha256 of the canonical JSON of the resolved config without path/logging keys, and of the task's
    version (its card's): a protocol change is a new config, never skipped as done nor pooled with old runs."""
    kept = {k: v for k, v in config.items() if k not in exclude}
    if task_version is not None:
        kept["task_version"] = str(task_version)
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def tensors_sha256(tensors: dict[str, Any]) -> str:
    """sha256 over named tensors (names, shapes, dtypes and bytes, in name order): a weights identity."""
    h = hashlib.sha256()
    update_with_tensors(h, tensors)
    return h.hexdigest()


def update_with_tensors(h: "hashlib._Hash", tensors: dict[str, Any]) -> None:
    """Feed named tensors to a sha256 (names, shapes, dtypes and bytes, in name order)."""
    import torch

    for name, tensor in sorted(tensors.items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def versions() -> dict[str, str | None]:
    """Versions of python, of the libraries whose behaviour a result depends on, and of the BLAS each
    numeric library computes with (torch's and numpy's: a BLAS change moves the last bits)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in _DISTRIBUTIONS.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return {**out, "torch_blas": _torch_blas(), "numpy_blas": _numpy_blas()}


def _torch_blas() -> str | None:
    """torch's BLAS as its build reports it, e.g. ``mkl (Intel(R) oneAPI Math Kernel Library Version 2024.2...)``."""
    import torch

    config = torch.__config__.show()
    name = re.search(r"BLAS_INFO=([^,\s]+)", config)
    library = re.search(r"^\s*- (.*(?:Math Kernel Library|OpenBLAS|BLIS|Accelerate).*)$", config, re.MULTILINE)
    if name is None:
        return None
    return f"{name.group(1)} ({library.group(1).strip()})" if library else name.group(1)


def _numpy_blas() -> str | None:
    """numpy's BLAS and its version, e.g. ``scipy-openblas 0.3.31.188.0``."""
    import numpy as np

    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
    except (AttributeError, KeyError, TypeError):
        return None
    return f"{blas.get('name')} {blas.get('version')}"


def git_state(repo: Path | None = None) -> dict[str, Any]:
    """The commit sha and whether the work tree has uncommitted changes (None outside git)."""
    cwd = repo or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if sha else None
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def hardware(accelerator: str = "cpu", n_devices: int = 1) -> dict[str, Any]:
    """Where the run executes: device name, device count, world size, host, CPU threads and CPU capability."""
    import torch

    from bench.device import trainer_on_cuda

    if trainer_on_cuda(accelerator):
        device = torch.cuda.get_device_name(0)
    else:
        device = platform.processor() or platform.machine() or "cpu"
    return {
        "device": device,
        "n_devices": int(n_devices),
        "world_size": int(os.environ.get("WORLD_SIZE", n_devices or 1)),
        "hostname": socket.gethostname(),
        # what else changes the bits on a CPU: the thread count (order of float sums) and the vector
        # kernels torch picked for this CPU (AVX2, AVX512, ...)
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
