"""Generation throughput against the denoiser's bound, and the batched family sweep against one
run per intensity, side by side in one run.

The generator is the shift task's own ``EDMGenerator`` (bench's EDM sampler, Heun, float64 state,
as ``generator=edm`` runs it) around a small class-conditional UNet: a diffusers ``UNet2DModel``
(3x32x32, two resolutions) behind EDM's preconditioning (``bench.shift.generators.edm.EDMPrecond``:
c_skip, c_out, c_in, c_noise = ln(sigma)/4), untrained — throughput does not depend on the weights. The diffusers DDIM
path (``UNetGenerator``, same UNet) is measured the same way.

1. **Bound**: a sampler cannot beat ``N_evals`` calls of the bare denoiser at the same batch
   (Heun with N steps: 2N - 1 evaluations; DDIM: N). For each batch size the script times
   ``N_evals`` back-to-back bare forwards and a whole ``decode`` (best of ``--repeats`` each) and
   prints images/s of both and their ratio (acceptance >= 0.9).
   The batch size for the sweep is the one with the best sampler images/s (chosen by measurement).
2. **Family sweep** (after an untimed warm-up build, the two interleaved, best of ``--repeats``):
   ``ShardedDatasets.build`` over every intensity of a family at once (one eps
   draw per shard, the latents of all intensities concatenated into full batches) against what a
   competent user writes: one ``build`` per intensity with the same generator (loaded once) and the
   same batch size. Both write the same shards; the script checks the images are identical.

Timings are the best of ``--repeats``; ``BENCH_THREADS`` sets torch's threads (default 1: the
machine is usually shared). Results go to ``results/benchmarks/generation.json``.

    python benchmarks/generation.py [--steps 8] [--batch-sizes 8 16 32 64 128] [--n 96]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from bench.atomic import atomic_write_json
from bench.shift.config import GeneratorConfig
from bench.shift.dataset import SetSpec, ShardedDatasets
from bench.shift.families import TRAIN_VALUES, Shift
from bench.shift.generators.diffusers_unet import EMBEDDED_SCHEDULER, UNetGenerator, tiny_unet
from bench.shift.generators.edm import EDMGenerator, EDMPrecond
from bench.shift.rng import draw_anchors

SWEEPS = {"truncation": [0.9, 0.95, 1.0, 1.05, 1.1], "extend": [0.5, 0.625, 0.75, 0.875, 1.0],
          "overlap": [0.0, 0.1, 0.2, 0.3, 0.4]}


class UNetF(nn.Module):
    """A class-conditional UNet2DModel as EDM's raw network F(c_in x, c_noise, one-hot labels)."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
        return self.unet(x, c_noise, class_labels=class_labels.argmax(1)).sample


def best_of(fn, repeats: int) -> float:
    """The fastest of ``repeats`` calls, in seconds (GPU work finished before the clock stops)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


@torch.no_grad()
def bound_rows(edm: EDMGenerator, ddim: UNetGenerator, batch_sizes: list[int], steps: int, repeats: int) -> list[dict]:
    """Sampler images/s against N_evals x the bare denoiser forward, per batch size."""
    rows = []
    g = torch.Generator().manual_seed(0)
    for b in batch_sizes:
        z = torch.randn(b, edm.latent_dim, generator=g)
        y = torch.randint(edm.num_classes, (b,), generator=g)
        dev = edm.device  # the bare forward gets its inputs where the network is, as the sampler does
        x, y_dev = torch.randn(b, *edm.latent_shape, generator=g).to(dev), y.to(dev)
        one_hot = torch.eye(edm.label_dim, device=dev)[y_dev]
        sigma = torch.tensor(2.5, dtype=torch.float64, device=dev)
        t = torch.tensor(EMBEDDED_SCHEDULER["num_train_timesteps"] // 2, device=dev)
        forward = {"edm_heun": (lambda: edm.net(x, sigma, one_hot), 2 * steps - 1, edm),
                   "diffusers_ddim": (lambda: ddim.unet(x, t, class_labels=y_dev).sample, steps, ddim)}
        for name, (fn, n_evals, gen) in forward.items():
            fn()  # warm-up (allocator, oneDNN primitives)
            gen.decode(z, y)
            # the bound is timed as a block of n_evals forwards, so it meets the same machine noise as a decode
            t_evals = best_of(lambda: [fn() for _ in range(n_evals)], repeats)
            t_decode = best_of(lambda: gen.decode(z, y), repeats)
            t_forward = t_evals / n_evals
            bound = b / t_evals
            rows.append({"sampler": name, "batch": b, "n_evals": n_evals, "forward_s": t_forward, "decode_s": t_decode,
                         "bound_img_s": bound, "sampler_img_s": b / t_decode, "fraction_of_bound": b / t_decode / bound})
            print(f"  {name:14s} batch {b:4d}: forward {1e3 * t_forward:8.2f} ms x {n_evals} evals -> bound "
                  f"{bound:8.1f} img/s | sampler {b / t_decode:8.1f} img/s = {b / t_decode / bound:.3f} of the bound")
    return rows


def sweep_row(gen: EDMGenerator, family: str, n: int, batch: int, repeats: int) -> dict:
    """The batched family sweep against one build per intensity, same generator and batch size."""
    values = SWEEPS[family]
    assert values[0] == TRAIN_VALUES[family]
    specs = [SetSpec("test", Shift(family, v), n, 3) for v in values]
    anchors = draw_anchors(gen.latent_dim, 0)

    def store(root: Path) -> ShardedDatasets:
        return ShardedDatasets(gen, root, anchors, 0, shard_size=1000, batch_size=batch, progress=False)

    with tempfile.TemporaryDirectory() as tmp:
        runs = iter(range(10 * repeats))

        def batched() -> None:
            store(Path(tmp) / f"batched{next(runs)}").build(specs)

        def per_intensity() -> None:
            root = Path(tmp) / f"per{next(runs)}"
            for spec in specs:  # one run per intensity: draw eps, decode that intensity only, write
                store(root).build([spec])

        store(Path(tmp) / "warm-up").build([SetSpec("test", Shift(family, values[0]), batch, 4)])  # first-call costs
        t_batched, t_per = float("inf"), float("inf")
        for _ in range(repeats):  # interleaved, so both meet the same machine load
            t_batched = min(t_batched, best_of(batched, 1))
            t_per = min(t_per, best_of(per_intensity, 1))
        a, b = store(Path(tmp) / "batched0"), store(Path(tmp) / "per1")
        max_diff = max(int((a.load(s)[0].int() - b.load(s)[0].int()).abs().max()) for s in specs)
    total = len(specs) * n
    row = {"family": family, "values": values, "n_per_intensity": n, "batch": batch, "batched_s": t_batched,
           "per_intensity_s": t_per, "batched_img_s": total / t_batched, "per_intensity_img_s": total / t_per,
           "speedup": t_per / t_batched, "max_abs_difference": max_diff}
    print(f"  {family}: batched sweep {total / t_batched:8.1f} img/s | one run per intensity {total / t_per:8.1f} img/s "
          f"| ratio {t_per / t_batched:.2f}x | same images: max |difference| {max_diff} of 255")
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8, help="sampler steps (the paper: 50; fewer keeps the CPU run short)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    p.add_argument("--hidden", type=int, default=32, help="UNet base channels")
    p.add_argument("--n", type=int, default=96, help="images per intensity in the family sweep")
    p.add_argument("--family", choices=list(SWEEPS), default="overlap")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="results/benchmarks/generation.json")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    device = "cuda" if torch.cuda.is_available() else "cpu"

    torch.manual_seed(0)
    unet = tiny_unet(32, args.hidden, in_chans=3)
    net = EDMPrecond(UNetF(unet), img_resolution=32, img_channels=3, label_dim=10)
    edm = EDMGenerator(net, GeneratorConfig(kind="edm", sampler="heun", steps=args.steps, device=device),
                       tag="bench-unet")
    ddim = UNetGenerator(unet, EMBEDDED_SCHEDULER, GeneratorConfig(kind="unet", sampler="ddim", steps=args.steps,
                                                                   device=device), tag="bench-unet")
    print(f"generation: UNet2DModel 3x32x32 (hidden {args.hidden}), {args.steps} steps, {device}, "
          f"{torch.get_num_threads()} thread(s)")
    print("sampler vs N_evals x the bare denoiser forward, per batch size:")
    bounds = bound_rows(edm, ddim, args.batch_sizes, args.steps, args.repeats)
    edm_rows = [r for r in bounds if r["sampler"] == "edm_heun"]
    batch = max(edm_rows, key=lambda r: r["sampler_img_s"])["batch"]
    print(f"batch size chosen by measurement: {batch} (best EDM sampler images/s)")
    print(f"family sweep at batch {batch}, {args.n} images per intensity:")
    sweep = sweep_row(edm, args.family, args.n, batch, args.repeats)
    result = {"benchmark": "generation", "device": device, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "unet_hidden": args.hidden, "steps": args.steps, "bound": bounds, "chosen_batch": batch, "sweep": sweep,
              "min_fraction_of_bound": min(r["fraction_of_bound"] for r in bounds)}
    atomic_write_json(Path(args.out), result)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
