"""Generated datasets as sha256-checked shards on disk, with a manifest per set.

A *set* is ``n`` images of one split decoded at one shift. Its ``eps`` and labels come from
the split's seed and the shard index only, so every set of a split with the same seed is
*paired*: the test sets of every intensity decode the same ``eps`` and labels. Layout::

    <root>/<split>-<shift key>-seed<S>-n<N>-shard<K>/
        shard-00000.safetensors   # images uint8 (n, C, H, W), labels int64, index int64
        shard-00000.safetensors.sha256   # its sha256 (bench.cache: checked on every read)
        manifest.json             # generator id + weights hash, shift, seeds, counts, shard sha256s
        grid.png                  # the first images, one sample grid per intensity

Generation is batched across every set that shares ``eps`` (a whole sweep decodes as one
stream), split across the ranks of a running process group (DDP: each rank decodes its share of
the shards, rank 0 alone writes), atomic (each shard and manifest write is a rename), resumable
(a shard whose bytes
match the manifest's sha256 is skipped; an unrecorded or mismatching one is torn and is
decoded again), and deterministic, so a resumed build is byte-identical to an uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from bench.atomic import atomic_save, atomic_write_json
from bench.cache import Cache
from bench.errors import DataError
from bench.shift.families import Shift
from bench.shift.generators import Generator
from bench.shift.rng import REFERENCE_BATCH, check_reference_sizes, check_rng, draw_shard, reference_split

log = logging.getLogger("bench.shift")
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class SetSpec:
    """One generated set: ``n`` images of ``split`` drawn with ``seed`` and decoded at ``shift``."""
    split: str
    shift: Shift
    n: int
    seed: int

    def dirname(self, shard_size: int, latent_key: str) -> str:
        return f"{self.split}-{latent_key}-seed{self.seed}-n{self.n}-shard{shard_size}"

    @property
    def stream(self) -> tuple[int, int]:
        """Sets with the same stream decode the same eps and labels (they are paired)."""
        return self.seed, self.n


def _rank_world() -> tuple[int, int]:
    """This process's rank and the world size of the running process group ((0, 1) without one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather_to_rank0(item: object, rank: int, world: int) -> list:
    """Every rank's ``item``, in rank order, on rank 0 (other ranks get a list of Nones to iterate)."""
    if world == 1:
        return [item]
    import torch.distributed as dist

    out = [None] * world if rank == 0 else None
    dist.gather_object(item, out, dst=0)
    return out if rank == 0 else [None] * world


def _barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def to_uint8(images: torch.Tensor, quantize: str = "round") -> torch.Tensor:
    """Images in [0, 1] as uint8: ``round`` to the nearest level (NVlabs' generate.py), or ``floor``
    (``(x * 255).astype(uint8)``: how the Control+Shift reference stored its sets)."""
    scaled = images.mul(255.0)
    scaled = scaled.floor_() if quantize == "floor" else scaled.round_()
    return scaled.clamp_(0, 255).to(torch.uint8)


class ShardedDatasets:
    """Builds and reads the generated sets of one generator and anchor draw under ``root``.

    ``rng`` (see :mod:`bench.shift.rng`) says how each set's eps and labels are drawn from its seed:
    per shard (``bench``) or as the reference scripts draw a whole split (``reference``)."""

    def __init__(self, generator: Generator, root: str | Path, anchors: torch.Tensor, anchor_seed: int,
                 shard_size: int = 1000, batch_size: int = 256, progress: bool = True, rng: str = "bench",
                 cache: Cache | None = None) -> None:
        if shard_size < 1 or batch_size < 1:
            raise DataError("shard_size and batch_size must be positive")
        check_rng(rng)
        if rng == "reference":
            check_reference_sizes(shard_size=shard_size)
        self.generator, self.anchors, self.anchor_seed, self.rng = generator, anchors, anchor_seed, rng
        self.shard_size, self.batch_size, self.progress = shard_size, batch_size, progress
        anchors_dir = f"anchors{anchor_seed}" if rng == "bench" else f"reference-anchors{anchor_seed}"
        self.root = Path(root) / f"{generator.id}-{generator.weights_hash[:12]}" / anchors_dir
        self._reference_draws: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.cache = cache if cache is not None else Cache(Path(root))  # shard writes and checks

    def latent_key(self, spec: SetSpec) -> str:
        """The name of the set's latent distribution (equal names: one set on disk)."""
        return spec.shift.reference_key if self.rng == "reference" else spec.shift.key

    def path(self, spec: SetSpec) -> Path:
        return self.root / spec.dirname(self.shard_size, self.latent_key(spec))

    def shard_counts(self, n: int) -> list[int]:
        return [min(self.shard_size, n - k * self.shard_size) for k in range(math.ceil(n / self.shard_size))]

    # -- manifest ---------------------------------------------------------------------------
    def _manifest(self, spec: SetSpec) -> dict:
        path = self.path(spec) / "manifest.json"
        if path.is_file():
            try:
                manifest = json.loads(path.read_text())
                if manifest.get("format") == MANIFEST_FORMAT:
                    return manifest
            except json.JSONDecodeError:
                log.warning("%s is unreadable; rebuilding its set", path)
        return {"format": MANIFEST_FORMAT, "generator": self.generator.describe(), "split": spec.split,
                "latent": self.latent_key(spec), "shifts": [],
                "seeds": {"eps_and_labels": spec.seed, "anchors": self.anchor_seed, "rng": self.rng},
                "counts": {"n": spec.n, "shard_size": self.shard_size, "n_shards": len(self.shard_counts(spec.n))},
                "shards": {}, "complete": False}

    def _write_manifest(self, spec: SetSpec, manifest: dict) -> None:
        atomic_write_json(self.path(spec) / "manifest.json", manifest)

    def _shard_ok(self, spec: SetSpec, manifest: dict, k: int) -> bool:
        """True when shard ``k`` exists and its bytes match the manifest (else it is missing or torn)."""
        path = self.path(spec) / f"shard-{k:05d}.safetensors"
        record = manifest["shards"].get(str(k))
        if not path.is_file():
            return False
        if record is None:
            log.warning("torn shard %s (not recorded in the manifest): decoding it again", path)
            return False
        return self.cache.verify(path)

    # -- building ---------------------------------------------------------------------------
    def build(self, specs: list[SetSpec]) -> None:
        """Generate every set in ``specs`` that is not complete on disk."""
        manifests: dict[SetSpec, dict] = {}  # one per directory: equal latent keys share a set
        first: dict[Path, SetSpec] = {}
        for spec in specs:
            owner = first.setdefault(self.path(spec), spec)
            manifest = manifests.setdefault(owner, self._manifest(owner))
            alias = {"family": spec.shift.family, "value": spec.shift.value}
            if alias not in manifest["shifts"]:
                manifest["shifts"].append(alias)
                manifest["shifts"].sort(key=lambda a: (a["family"], a["value"]))
            manifests[spec] = manifest
        todo: dict[tuple, dict[int, list[SetSpec]]] = defaultdict(lambda: defaultdict(list))
        for spec, manifest in manifests.items():
            for k in range(len(self.shard_counts(spec.n))):
                if not self._shard_ok(spec, manifest, k):
                    todo[spec.stream][k].append(spec)
        # one draw of eps per (stream, shard) decodes the shard of every set that shares it;
        # the batch always holds *all* sets of the stream so a resumed shard decodes bit-identically
        groups = {stream: [s for s in manifests if s.stream == stream] for stream in todo}
        total = sum(len(groups[st]) * self.shard_counts(st[1])[k] for st, shards in todo.items() for k in shards)
        # under DDP (a process group is up) rank r decodes jobs r, r + world, ... and rank 0 alone writes:
        # each round gathers one decoded shard per rank to rank 0
        jobs = [(stream, k, set(missing)) for stream, shards in todo.items() for k, missing in sorted(shards.items())]
        rank, world = _rank_world()
        with tqdm(total=total, desc="generating", unit="img", disable=not self.progress or total == 0 or rank) as bar:
            for start in range(0, len(jobs), world):
                mine = jobs[start + rank] if start + rank < len(jobs) else None
                decoded = self._decode_shard(groups[mine[0]], mine[1], bar) if mine else None
                for job, result in zip(jobs[start:start + world], _gather_to_rank0(decoded, rank, world)):
                    if rank == 0:
                        self._write_shard(groups[job[0]], job[1], job[2], manifests, *result)
        if rank:
            _barrier()  # the sets are complete once rank 0 has written them
            return
        for spec, manifest in manifests.items():
            if not manifest["complete"]:
                manifest["complete"] = True
                manifest["counts"]["per_class"] = self._class_counts(spec)
            self._write_manifest(spec, manifest)
            if not (self.path(spec) / "grid.png").is_file():
                self.save_grid(spec, self.path(spec) / "grid.png")
        if world > 1:
            _barrier()

    def draw(self, seed: int, n: int, k: int, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The eps (count, dim) and labels of shard ``k`` of a set of ``n`` drawn with ``seed``."""
        dim, classes = dim or self.generator.latent_dim, self.generator.num_classes
        count = self.shard_counts(n)[k]
        if self.rng == "bench":
            return draw_shard(seed, k, count, dim, classes)
        if (seed, n) not in self._reference_draws:  # the whole split, once: its stream has no random access
            self._reference_draws[(seed, n)] = reference_split(seed, n, self.generator.latent_dim, classes)
        eps, labels = self._reference_draws[(seed, n)]
        rows = slice(k * self.shard_size, k * self.shard_size + count)
        return eps[rows, :dim], labels[rows]

    def _decode_shard(self, specs: list[SetSpec], k: int, bar: tqdm) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Shard ``k`` of every set in ``specs`` (one stream): its images per set, and the labels."""
        seed, n = specs[0].stream
        count = self.shard_counts(n)[k]
        eps, labels = self.draw(seed, n, k)
        z = torch.cat([self._latents(spec, eps) for spec in specs])
        y = labels.repeat(len(specs))
        images = []
        for i in range(0, len(z), self.batch_size):
            decoded = self.generator.decode(z[i:i + self.batch_size], y[i:i + self.batch_size])
            images.append(to_uint8(decoded, self.generator.quantize))
            bar.update(len(images[-1]))
        return list(torch.cat(images).split(count)), labels

    def latents(self, spec: SetSpec, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The float32 latents (count, d) shard ``k`` of the set decodes, and its labels."""
        eps, labels = self.draw(spec.seed, spec.n, k)
        return self._latents(spec, eps), labels

    def _latents(self, spec: SetSpec, eps: torch.Tensor) -> torch.Tensor:
        """The latents of ``eps`` under the set's shift: the reference's float32 maths one generation batch
        at a time (a shard starts on a batch boundary), else bench's float64 maths cast to float32."""
        if self.rng == "reference":
            return torch.cat([spec.shift.reference_latents(batch, self.anchors) for batch in eps.split(REFERENCE_BATCH)])
        return spec.shift.latents(eps, self.anchors.to(eps.dtype)).float()

    def _write_shard(self, specs: list[SetSpec], k: int, missing: set[SetSpec], manifests: dict,
                     images: list[torch.Tensor], labels: torch.Tensor) -> None:
        count = len(labels)
        index = torch.arange(k * self.shard_size, k * self.shard_size + count)
        for spec, imgs in zip(specs, images):
            if spec not in missing:
                continue
            path = self.path(spec) / f"shard-{k:05d}.safetensors"
            tensors = {"images": imgs.contiguous(), "labels": labels.clone(), "index": index}
            digest = self.cache.write(path, lambda tmp: save_file(tensors, tmp))
            manifests[spec]["shards"][str(k)] = {"file": path.name, "n": count, "sha256": digest}
            self._write_manifest(spec, manifests[spec])

    # -- reading ----------------------------------------------------------------------------
    def load(self, spec: SetSpec) -> tuple[torch.Tensor, torch.Tensor]:
        """Images uint8 (n, C, H, W) and labels of a complete set, every shard hash-checked."""
        manifest = self._manifest(spec)
        if not manifest["complete"]:
            raise DataError(f"generated set {self.path(spec)} is incomplete; run the shift task again to finish it")
        images, labels = [], []
        for k in range(manifest["counts"]["n_shards"]):
            if not self._shard_ok(spec, manifest, k):
                raise DataError(f"shard {k} of {self.path(spec)} is missing or torn; rerun to regenerate it")
            shard = load_file(str(self.path(spec) / f"shard-{k:05d}.safetensors"))
            images.append(shard["images"])
            labels.append(shard["labels"])
        return torch.cat(images), torch.cat(labels)

    def _class_counts(self, spec: SetSpec) -> list[int]:
        labels = torch.cat([self.draw(spec.seed, spec.n, k, dim=1)[1] for k in range(len(self.shard_counts(spec.n)))])
        return torch.bincount(labels, minlength=self.generator.num_classes).tolist()

    def first_images(self, spec: SetSpec, count: int) -> torch.Tensor:
        """The first ``count`` images of a set (from shard 0)."""
        shard = load_file(str(self.path(spec) / "shard-00000.safetensors"))
        return shard["images"][:count]

    def grid(self, spec: SetSpec, side: int = 8) -> torch.Tensor:
        """A ``side`` x ``side`` grid image of the set's first images."""
        return make_grid(self.first_images(spec, side * side).float() / 255.0, nrow=side, padding=1)

    def save_grid(self, spec: SetSpec, path: Path, side: int = 8) -> None:
        grid = self.grid(spec, side)
        atomic_save(path, lambda tmp: save_image(grid, tmp, format="png"))

    def morph(self, specs: list[SetSpec], rows: int = 8) -> torch.Tensor:
        """One image of a paired sweep: row i is sample i, column j its decoding at intensity j.
        Written next to the sets as ``morph-<family>-<values>.png``."""
        columns = [self.first_images(spec, rows).float() / 255.0 for spec in specs]
        tiles = torch.stack(columns, 1).flatten(0, 1)  # (rows * n_values, C, H, W), row-major
        image = make_grid(tiles, nrow=len(specs), padding=1)
        values = "_".join(f"{s.shift.value:g}" for s in specs)
        atomic_save(self.root / f"morph-{specs[0].shift.family}-{values}.png",
                    lambda tmp: save_image(image, tmp, format="png"))
        return image
