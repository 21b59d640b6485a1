"""The run context's one train-and-cache path (``ctx.trained``): trained once, reseeded, cached and
sealed by rank 0, resumable from its own checkpoint folder, removed once cached."""
from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from bench.cache import Cache
from bench.context import RunContext, tensors_payload

TRAINER = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}
pytestmark = pytest.mark.integration  # models are trained (tiny ones: seconds)


class Line(L.LightningModule):
    """y = w x + b by SGD: its init draws from the global RNG, as every model's does."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _train(calls: list, crash_at_epoch: int | None = None):
    def train(training):
        calls.append(training.checkpoint_dir)
        module = Line()
        x = torch.linspace(-1, 1, 32).unsqueeze(1)

        class Crash(L.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if trainer.current_epoch == crash_at_epoch:
                    raise RuntimeError("killed")

        training.fit(module, callbacks=[Crash()], train_dataloaders=DataLoader(TensorDataset(x, 3 * x + 1),
                                                                                batch_size=8))
        return module.state_dict()
    return train


def test_trained_once_then_from_the_cache(tmp_path):
    ctx = RunContext(Cache(tmp_path), trainer_cfg=TRAINER)
    calls: list = []
    first = ctx.trained("line", "test/lines", {"data": "3x+1"}, _train(calls), seed=7, payload=tensors_payload(),
                        trainer={"max_epochs": 2})
    again = ctx.trained("line", "test/lines", {"data": "3x+1"}, _train(calls), seed=7, payload=tensors_payload(),
                        trainer={"max_epochs": 2})
    assert len(calls) == 1 and all(torch.equal(first[k], again[k]) for k in first)
    (entry,) = tmp_path.glob("test/lines/line-*.safetensors")
    assert Cache(tmp_path).verify(entry)  # sealed with its sha256
    assert not calls[0].exists()  # the checkpoints go once the model is cached
    # another recipe (the trainer's length is part of the key) trains again; the seed fixes the init
    other = ctx.trained("line", "test/lines", {"data": "3x+1"}, _train(calls), seed=7, payload=tensors_payload(),
                        trainer={"max_epochs": 3})
    assert len(calls) == 2 and not torch.equal(other["layer.weight"], first["layer.weight"])
    fresh = RunContext(Cache(tmp_path / "elsewhere"), trainer_cfg=TRAINER)
    same = fresh.trained("line", "test/lines", {"data": "3x+1"}, _train([]), seed=7, payload=tensors_payload(),
                         trainer={"max_epochs": 2})
    assert all(torch.equal(first[k], same[k]) for k in first)  # reseeded: the same weights from scratch


def test_an_interrupted_training_resumes_and_a_rank_above_zero_never_writes(tmp_path, monkeypatch):
    ctx = RunContext(Cache(tmp_path), trainer_cfg=TRAINER)
    calls: list = []
    with pytest.raises(RuntimeError, match="killed"):
        ctx.trained("line", "test/lines", {}, _train(calls, crash_at_epoch=2), seed=0, trainer={"max_epochs": 3})
    assert (calls[0] / "last.ckpt").is_file()  # kept for the next attempt
    resumed = ctx.trained("line", "test/lines", {}, _train(calls), seed=0, trainer={"max_epochs": 3})
    assert calls[1] == calls[0] and not calls[0].exists()  # the same folder, removed once done
    whole = RunContext(Cache(tmp_path / "b"), trainer_cfg=TRAINER).trained(
        "line", "test/lines", {}, _train([]), seed=0, trainer={"max_epochs": 3})
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)  # resuming changes no bit
    monkeypatch.setenv("RANK", "1")
    assert not ctx.writes
    ctx.trained("line", "test/lines", {"data": "rank1"}, _train([]), seed=0, payload=tensors_payload(),
                trainer={"max_epochs": 1})
    assert not list(tmp_path.glob("test/lines/*.safetensors"))
