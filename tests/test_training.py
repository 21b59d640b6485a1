"""One Trainer factory: every ``trainer.*`` setting takes effect wherever bench runs a Trainer.

Each task runs end to end with ``trainer.precision=bf16-mixed`` on the CPU while every Trainer
bench constructs, and every step Lightning runs, is watched: each training (fit) and inference
(test, predict) path must run under a bf16 autocast, with no Trainer built around the factory.
"""
from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.plugins.precision import MixedPrecision

from bench.cli import execute
from bench.store import read_run
from bench.tasks import get_task
from tests.conftest import CONF_DIR
from tests.modality_gap.test_task import TINY as GAP_TINY
from tests.shift.test_task import TINY as SHIFT_TINY
from tests.whitening.test_task import TINY as WHITENING_TINY

# the stages each task's training and inference paths must run under bf16
EXPECTED = {
    "whitening": (WHITENING_TINY, {"fit", "test"}),  # classifiers; test accuracy
    "modality_gap": (GAP_TINY, {"fit", "predict"}),  # the embedded CLIP; embedding extraction
    "shift": (SHIFT_TINY, {"fit", "predict"}),  # the generator and the classifiers; per-image correctness
}


@pytest.fixture
def watch(monkeypatch):
    """Records (stage, precision) of every Trainer entry point and whether autocast was on in each step."""
    calls: list[tuple[str, str]] = []
    steps: list[tuple[bool, torch.dtype]] = []
    for stage in ("fit", "test", "predict"):
        original = getattr(L.Trainer, stage)

        def wrapped(self, *args, _stage=stage, _original=original, **kwargs):
            calls.append((_stage, str(self.precision_plugin.precision)))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(L.Trainer, stage, wrapped)
    context = MixedPrecision.forward_context

    def forward_context(self):
        manager = context(self)

        class Watched:
            def __enter__(self_inner):
                out = manager.__enter__()
                steps.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
                return out

            def __exit__(self_inner, *exc):
                return manager.__exit__(*exc)

        return Watched()

    monkeypatch.setattr(MixedPrecision, "forward_context", forward_context)
    return calls, steps


@pytest.mark.integration
@pytest.mark.parametrize("task", [pytest.param(t, marks=pytest.mark.slow) if t == "shift" else t
                                  for t in EXPECTED])  # shift's run takes ~30 s: make test-slow
def test_bf16_mixed_takes_effect_in_every_training_and_inference_path(task, watch, bench_root):
    calls, steps = watch
    overrides, stages = EXPECTED[task]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        run_dir = execute(compose(config_name="config", overrides=[*overrides, "trainer.precision=bf16-mixed"]))
    record = read_run(run_dir)[0]
    assert record["status"] == "completed" and record["task_version"] == get_task(task).card.version
    assert {stage for stage, _ in calls} == stages, calls
    assert all(precision == "bf16-mixed" for _, precision in calls), calls
    assert steps and all(on and dtype == torch.bfloat16 for on, dtype in steps), steps[:5]
