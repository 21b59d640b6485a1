"""Generation throughput: a whole family sweep decoded as one stream vs one run per intensity.

    python benchmarks/generation.py                         # embedded VAE, overlap sweep
    python benchmarks/generation.py --generator unet --n 64 # the tiny diffusion UNet (slower)

*batched*: ``ShardedDatasets.build`` over every intensity of the family at once: one ``eps``
draw per shard, the latents of all intensities concatenated and decoded in full batches.
*reference*: what the reference scripts do — one run per intensity, each loading the generator
(from bench's cache, so no training is timed), drawing ``eps`` and decoding only that intensity.
Both write the same sharded sets to disk. The script checks that both made the same images and
prints images per second for each and the ratio.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.shift.config import GeneratorConfig, GeneratorTrainConfig  # noqa: E402
from bench.shift.dataset import SetSpec, ShardedDatasets  # noqa: E402
from bench.shift.families import TRAIN_VALUES, Shift  # noqa: E402
from bench.shift.rng import draw_anchors  # noqa: E402
from bench.shift.generators import build_generator  # noqa: E402

SWEEPS = {"truncation": [0.9, 0.95, 1.0, 1.05, 1.1], "extend": [0.5, 0.625, 0.75, 0.875, 1.0],
          "overlap": [0.0, 0.1, 0.2, 0.3, 0.4]}


def generator_config(kind: str) -> GeneratorConfig:
    if kind == "vae":
        return GeneratorConfig(kind="vae", latent_dim=16, hidden=256, device="cpu",  # conf/generator/vae.yaml
                               train=GeneratorTrainConfig(epochs=15, batch_size=128))
    return GeneratorConfig(kind="unet", image_size=16, hidden=32, steps=20, device="cpu",
                           train=GeneratorTrainConfig(epochs=15, batch_size=64))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generator", choices=["vae", "unet"], default="vae")
    p.add_argument("--family", choices=list(SWEEPS), default="overlap")
    p.add_argument("--n", type=int, default=2000, help="test images per intensity")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE", ".cache/bench"))
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))

    cfg = generator_config(args.generator)
    cfg.batch_size = args.batch_size
    gen = build_generator(cfg, args.cache_dir)  # trains and caches once; not timed
    values = SWEEPS[args.family]
    assert values[0] == TRAIN_VALUES[args.family]
    specs = [SetSpec("test", Shift(args.family, v), args.n, 3) for v in values]
    total = len(specs) * args.n

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        batched = ShardedDatasets(gen, Path(tmp) / "batched", draw_anchors(gen.latent_dim, 0), 0,
                                  shard_size=1000, batch_size=args.batch_size, progress=False)
        batched.build(specs)
        t_batched = time.perf_counter() - t0

        t0 = time.perf_counter()
        for spec in specs:  # one run per intensity: load the generator, draw eps, decode, write
            run_gen = build_generator(cfg, args.cache_dir)
            ShardedDatasets(run_gen, Path(tmp) / "reference", draw_anchors(run_gen.latent_dim, 0), 0,
                            shard_size=1000, batch_size=args.batch_size, progress=False).build([spec])
        t_reference = time.perf_counter() - t0
        reference = ShardedDatasets(gen, Path(tmp) / "reference", draw_anchors(gen.latent_dim, 0), 0,
                                    shard_size=1000, batch_size=args.batch_size, progress=False)
        max_diff = max(int((batched.load(s)[0].int() - reference.load(s)[0].int()).abs().max()) for s in specs)

    print(f"generator {gen.id}, family {args.family} {values}, {args.n} images per intensity, "
          f"batch {args.batch_size}, {torch.get_num_threads()} thread(s)")
    print(f"  batched sweep (one eps draw, all intensities per batch): {total / t_batched:9.1f} img/s ({t_batched:.2f} s)")
    print(f"  one run per intensity (reference scripts):               {total / t_reference:9.1f} img/s ({t_reference:.2f} s)")
    print(f"  same images: max |difference| = {max_diff} grey level(s) of 255")
    print(f"ratio (batched / per-intensity): {t_reference / t_batched:.2f}x")


if __name__ == "__main__":
    main()
