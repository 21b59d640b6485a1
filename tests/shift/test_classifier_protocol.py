"""The classifier protocol of the shift task: augmentation drawn per image, SGD with a cosine
schedule, and classifier training that resumes from its checkpoint after an interruption."""
import pytest
import torch
from omegaconf import OmegaConf

from bench.cache import Cache
from bench.context import RunContext
from bench.models import create_model
from bench.shift import evaluate
from bench.training import ClassifierModule

TRAINER = {"accelerator": "cpu", "devices": 1, "max_epochs": 2, "enable_progress_bar": False,
           "num_sanity_val_steps": 0}
TRAIN = {"batch_size": 16, "optim": {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}, "hflip": True,
         "scheduler": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR"}}


def _module(**kw):
    return ClassifierModule(create_model("resnet20", num_classes=10, in_chans=3, width=0.25), 10, **kw)


def test_crops_and_flips_differ_within_a_batch():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 16).expand(32, -1, -1, -1).contiguous()  # one image, 32 times
    out = _module(augment=True, hflip=False).augment_batch(x)
    assert out.shape == x.shape
    distinct = {tuple(row.flatten().tolist()) for row in out}
    assert len(distinct) > 8  # 81 crop offsets: one offset per batch would give a single distinct image
    # every output is a crop of the reflect-padded image (not noise): it matches some offset exactly
    padded = torch.nn.functional.pad(x[:1], (4, 4, 4, 4), mode="reflect")[0]
    offsets = [padded[:, i:i + 16, j:j + 16] for i in range(9) for j in range(9)]
    assert all(any(torch.equal(o, c) for c in offsets) for o in out)
    flipped = _module(augment=True, hflip=True).augment_batch(x)
    assert any(not any(torch.equal(o, c) for c in offsets) for o in flipped)  # some are mirrored crops
    assert torch.equal(_module(augment=False).augment_batch(x), x)


def _learning_rates(monkeypatch, folder, images, labels, **kw) -> list[float]:
    """The learning rate at each training batch of ``train_classifier`` (a resnet20 x0.25 under TRAIN)."""
    lrs = []

    class Recording(ClassifierModule):
        def on_train_batch_start(self, batch, batch_idx):
            lrs.append(self.optimizers().param_groups[0]["lr"])

    monkeypatch.setattr(evaluate, "ClassifierModule", Recording)
    evaluate.train_classifier(RunContext(Cache(folder), trainer_cfg=OmegaConf.create(TRAINER)), images, labels,
                              {"name": "resnet20", "width": 0.25}, OmegaConf.create(TRAIN), False, 10, seed=0, **kw)
    return lrs


def test_cosine_schedule_decays_to_zero(monkeypatch, tmp_path):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    lrs = _learning_rates(monkeypatch, tmp_path, images, labels)
    assert len(lrs) == 8 and lrs[0] == pytest.approx(0.05)
    assert all(b < a for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.01


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    epochs_run, crash = [], [True]

    class Interrupted(ClassifierModule):
        def training_step(self, batch, batch_idx):
            if crash[0] and self.current_epoch == 1:
                raise RuntimeError("killed")
            epochs_run.append(self.current_epoch)
            return super().training_step(batch, batch_idx)

    monkeypatch.setattr(evaluate, "ClassifierModule", Interrupted)
    ctx = RunContext(Cache(tmp_path), trainer_cfg=OmegaConf.create(TRAINER))
    args = (ctx, images, labels, {"name": "resnet20", "width": 0.25}, OmegaConf.create(TRAIN), True, 10)
    with pytest.raises(RuntimeError, match="killed"):
        evaluate.train_classifier(*args, seed=0)
    assert epochs_run == [0] * 4, epochs_run
    (ckpt,) = tmp_path.glob("shift/classifiers/classifier-*.ckpt")  # the training's own folder, keyed by its data
    assert (ckpt / "last.ckpt").is_file(), list(tmp_path.rglob("*"))
    crash[0] = False
    epochs_run.clear()
    evaluate.train_classifier(*args, seed=0)
    assert epochs_run == [1] * 4  # only the epoch that was lost
    assert not ckpt.exists()  # a finished training leaves no checkpoint behind


def test_every_training_set_size_trains_the_same_optimizer_steps(monkeypatch, tmp_path):
    """The size ablation compares data, not training length: a quarter of the images runs four times
    the epochs, the same steps and the same full cosine schedule."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    steps = evaluate.train_steps(64, 2, 16)
    assert steps == 8 and evaluate.train_steps(65, 2, 16) == 10
    schedules = [_learning_rates(monkeypatch, tmp_path, images[:n], labels[:n], steps=steps) for n in (16, 64)]
    assert len(schedules[0]) == len(schedules[1]) == 8 and schedules[0] == pytest.approx(schedules[1])
