"""The generated sets of a shift run: per family its base train and val sets and its paired test sets (one
``eps`` and label draw decoded at every intensity), generated once into the sharded store (cached)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from bench.context import RunContext
from bench.device import trainer_on_cuda
from bench.seeding import derive
from bench.shift.dataset import SetSpec, ShardedDatasets
from bench.shift.families import Shift
from bench.shift.generators import Generator
from bench.shift.rng import REFERENCE_ANCHOR_SEED, REFERENCE_SEEDS, draw_anchors


@dataclass
class Sets:
    """The generated sets of a run: per family its base train and val sets and its paired test sets (one per
    intensity), in the sharded store; ``item_set`` names the units claims resample, per split."""
    generator: Generator
    store: ShardedDatasets
    anchors: torch.Tensor
    base: dict[str, Shift]
    train: dict[str, SetSpec]
    val: dict[str, SetSpec]
    test: dict[str, list[SetSpec]]
    item_set: dict[str, str]
    _loaded: dict[SetSpec, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def load(self, spec: SetSpec) -> tuple[torch.Tensor, torch.Tensor]:
        """A test set's images and labels (loaded once)."""
        if spec not in self._loaded:
            self._loaded[spec] = self.store.load(spec)
        return self._loaded[spec]

    def bases(self) -> dict[Path, list[str]]:
        """The families by base set: one classifier per base set (extend and overlap share theirs)."""
        out: dict[Path, list[str]] = {}
        for family, spec in self.train.items():
            out.setdefault(self.store.path(spec), []).append(family)
        return out


def generate(ctx: RunContext, generator: Generator, sweep: dict[str, list[float]], data_seed: int) -> Sets:
    """Generate (or find in the cache) each family's base train/val sets and its paired test sets."""
    cfg, task = ctx.cfg, ctx.cfg.task
    # bench: every draw derives from the data seed by purpose (bench.seeding): anchors, then each
    # split's eps/labels (a test set is one draw decoded at every intensity of every family);
    # reference: the reference script's seeds (bench.shift.rng)
    if task.rng == "reference":
        anchor_seed = REFERENCE_ANCHOR_SEED
        split_seed = dict(REFERENCE_SEEDS)
    else:
        anchor_seed = derive(data_seed, "shift", "anchors")
        split_seed = {split: derive(data_seed, "shift", "eps_and_labels", split) for split in ("train", "val", "test")}
    # the units claims resample: item i of every test set is the same eps and label (paired)
    item_set = {split: f"shift:{split}-seed{split_seed[split]}[0:{task[f'n_{split}']}]" for split in ("val", "test")}
    anchors = draw_anchors(generator.latent_dim, anchor_seed, task.rng)
    store = ShardedDatasets(generator, ctx.cache.root / "shift" / "datasets", anchors, anchor_seed,
                            task.shard_size, cfg.generator.batch_size, rng=task.rng, cache=ctx.cache)
    base = {f: Shift(f, values[0]) for f, values in sweep.items()}
    sets = Sets(generator, store, anchors, base,
                {f: SetSpec("train", base[f], task.n_train, split_seed["train"]) for f in sweep},
                {f: SetSpec("val", base[f], task.n_val, split_seed["val"]) for f in sweep},
                {f: [SetSpec("test", Shift(f, v), task.n_test, split_seed["test"]) for v in values]
                 for f, values in sweep.items()}, item_set)
    _join_launched_ranks(cfg.trainer)
    store.build([*sets.train.values(), *sets.val.values(), *(s for specs in sets.test.values() for s in specs)])
    return sets


def _join_launched_ranks(trainer: DictConfig) -> None:
    """Ranks started all at once by torchrun (``RANK`` set) join their process group before generation,
    so they split it (:meth:`ShardedDatasets.build`); Lightning's DDP then reuses the group. Ranks that
    Lightning itself launches start at the first fit, after generation, and find the sets complete."""
    import os

    import torch.distributed as dist

    if dist.is_initialized() or "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2 \
            or "MASTER_ADDR" not in os.environ:
        return
    gpu = trainer_on_cuda(trainer.accelerator)
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if gpu else "gloo")
