"""Optimizers and LR schedulers are config nodes built by ``hydra.utils.instantiate`` (``_partial_``)."""
import math

import pytest
import torch

from bench.config import validate
from bench.errors import ConfigError
from bench.tasks import get_task
from bench.training import ClassifierModule, build_optimizer, build_trainer, fit

TRAINER = {"accelerator": "cpu", "devices": 1, "fast_dev_run": 2, "enable_progress_bar": False}


class _Data(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        return torch.randn(1, 8, 8, generator=g), i % 3


def _train(optim, scheduler) -> tuple[list[float], torch.optim.Optimizer]:
    """Two fast_dev_run steps; the learning rate each step ran with, and the optimizer."""
    lrs = []

    class Recording(ClassifierModule):
        def on_train_batch_start(self, batch, batch_idx):
            lrs.append(self.optimizers().param_groups[0]["lr"])

    torch.manual_seed(0)
    module = Recording(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)), 3, optim=optim,
                       scheduler=scheduler)
    fit(build_trainer(TRAINER), module, train_dataloaders=torch.utils.data.DataLoader(_Data(), batch_size=8))
    return lrs, module.optimizers().optimizer


def test_a_composed_partial_optimizer_and_scheduler_train_and_the_lr_follows_the_schedule(compose):
    cfg = compose(["task=shift", "task.train.optim.lr=0.1", "task.train.scheduler.T_max=4",
                   "task.train.scheduler.eta_min=0.02"])
    train = validate(cfg, get_task("shift").load()[1]).task.train
    assert train.optim._target_ == "torch.optim.SGD" and train.optim._partial_ is True
    assert train.scheduler._target_ == "torch.optim.lr_scheduler.CosineAnnealingLR" and train.scheduler._partial_
    lrs, opt = _train(train.optim, train.scheduler)
    assert type(opt) is torch.optim.SGD
    group = opt.param_groups[0]
    assert (group["momentum"], group["weight_decay"]) == (0.9, 5e-4)  # the schema's defaults for shift
    cosine = [0.02 + (0.1 - 0.02) * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(3)]
    assert lrs == pytest.approx(cosine[:2])
    assert group["lr"] == pytest.approx(cosine[2])  # stepped after each of the two optimizer steps


def test_t_max_null_is_the_runs_number_of_steps_and_no_scheduler_is_constant():
    lrs, opt = _train({"lr": 0.1}, {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR"})
    assert lrs == pytest.approx([0.1, 0.05])  # T_max = 2 steps (fast_dev_run=2): half way after one
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)
    lrs, opt = _train({"_target_": "torch.optim.AdamW", "lr": 0.003, "weight_decay": 0.01}, None)
    assert type(opt) is torch.optim.AdamW and lrs == [0.003, 0.003] and opt.param_groups[0]["weight_decay"] == 0.01


@pytest.mark.parametrize(("optim", "message"), [
    ({"_target_": "torch.optim.Nope"}, "optim._target_='torch.optim.Nope' is not a torch.optim optimizer; "
                                       "use e.g. optim._target_=torch.optim.SGD"),
    ({"_target_": "torch.nn.Linear"}, "optim._target_='torch.nn.Linear' is not a torch.optim optimizer"),
    ({"_target_": "torch.optim.AdamW", "momentum": 0.9}, "torch.optim.AdamW takes no momentum "
                                                         "(optim.momentum=0.9); set optim.momentum=0"),
])
def test_a_wrong_optimizer_is_one_config_error_naming_the_fix(optim, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        build_optimizer(optim, torch.nn.Linear(2, 2).parameters())


def test_a_wrong_scheduler_is_one_config_error():
    from bench.training import build_scheduler

    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="scheduler._target_='torch.optim.SGD' is not a torch.optim.lr_scheduler"):
        build_scheduler({"_target_": "torch.optim.SGD"}, opt, 10)


@pytest.mark.integration
def test_a_wrong_optimizer_fails_at_the_start_of_a_run_with_one_line(tmp_path):
    """Before any data or training: the command line's error, exit 2."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**__import__("os").environ, "BENCH_ROOT": str(tmp_path), "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "task=whitening", "data=digits", "model=linear_cnn",
                           "logger=none", "task.optim._target_=torch.optim.Nope"], cwd=repo, env=env, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert ("bench: error: task.optim._target_='torch.optim.Nope' is not a torch.optim optimizer; use e.g. "
            "task.optim._target_=torch.optim.SGD") in proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.rglob("*.safetensors"))  # nothing trained
