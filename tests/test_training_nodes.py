"""The CLIP's and the embedded generators' optimizers and LR schedulers are the composed config's nodes,
built by the one factory (``hydra.utils.instantiate``): an override of ``_target_`` takes effect, a free
scheduler argument reaches the scheduler, a bogus target is one ConfigError before any training."""
from types import SimpleNamespace

import pytest
import torch

from bench.config import validate
from bench.errors import ConfigError
from bench.tasks import get_task

STEPS = 10  # the run's optimizer steps, as Lightning estimates them


def _configured(module) -> tuple[torch.optim.Optimizer, object]:
    """``module.configure_optimizers()`` as Lightning calls it (a trainer of STEPS optimizer steps)."""
    module._trainer = SimpleNamespace(estimated_stepping_batches=STEPS)
    out = module.configure_optimizers()
    return (out, None) if isinstance(out, torch.optim.Optimizer) else (out["optimizer"], out["lr_scheduler"]["scheduler"])


class _TinyClip(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)  # a weight (decayed) and a bias (not)
        self.logit_scale = torch.nn.Parameter(torch.ones([]))  # never decayed


def _clip(compose, *overrides):
    from omegaconf import OmegaConf

    from bench.modality_gap.contrastive import ContrastiveCLIP

    train = OmegaConf.to_container(validate(compose(["task=modality_gap", *overrides]),
                                            get_task("modality_gap").schemas()).clip.train)
    return _configured(ContrastiveCLIP(_TinyClip(), train["optim"], train["scheduler"]))


def test_the_clip_optimizer_and_one_cycle_schedule_come_from_clip_train(compose):
    opt, sched = _clip(compose)
    assert type(opt) is torch.optim.AdamW  # open_clip's recipe, as hard-coded before
    decayed, plain = opt.param_groups
    assert (decayed["weight_decay"], plain["weight_decay"]) == (0.1, 0.0)  # the param-group split holds
    assert [p.shape for p in decayed["params"]] == [(4, 4)] and len(plain["params"]) == 2  # bias, logit_scale
    assert type(sched) is torch.optim.lr_scheduler.OneCycleLR and sched.total_steps == STEPS
    assert [g["max_lr"] for g in opt.param_groups] == [2e-3, 2e-3]  # max_lr null: optim.lr
    assert sched._schedule_phases[0]["end_step"] == pytest.approx(0.15 * STEPS - 1)  # pct_start 0.15

    opt, sched = _clip(compose, "clip.train.optim._target_=torch.optim.SGD", "clip.train.optim.lr=0.5",
                       "clip.train.scheduler.pct_start=0.5")
    assert type(opt) is torch.optim.SGD and [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert [g["max_lr"] for g in opt.param_groups] == [0.5, 0.5]
    assert sched._schedule_phases[0]["end_step"] == pytest.approx(0.5 * STEPS - 1)
    opt, sched = _clip(compose, "clip.train.scheduler=null")
    assert sched is None  # a constant rate


def test_another_clip_scheduler_needs_its_own_arguments(compose):
    with pytest.raises(ConfigError, match=r"^torch.optim.lr_scheduler.CosineAnnealingLR takes no pct_start "
                                          r"\(clip.train.scheduler.pct_start=0.15\); set "
                                          r"clip.train.scheduler.pct_start=null"):
        _clip(compose, "clip.train.scheduler._target_=torch.optim.lr_scheduler.CosineAnnealingLR")
    _, sched = _clip(compose, "clip.train.scheduler._target_=torch.optim.lr_scheduler.CosineAnnealingLR",
                     "clip.train.scheduler.pct_start=null")  # null: a key that does not apply is left out
    assert type(sched) is torch.optim.lr_scheduler.CosineAnnealingLR and sched.T_max == STEPS


def test_a_bogus_clip_optimizer_fails_before_any_training(compose, tmp_path):
    from omegaconf import OmegaConf

    from bench.cache import Cache
    from bench.context import RunContext
    from bench.modality_gap.clip_training import train_embedded_clip

    cfg = validate(compose(["task=modality_gap", "clip.train.optim._target_=torch.optim.Nope"]),
                   get_task("modality_gap").schemas())
    with pytest.raises(ConfigError, match=r"^clip.train.optim._target_='torch.optim.Nope' is not a torch.optim "
                                          r"optimizer; use e.g. clip.train.optim._target_=torch.optim.SGD"):
        train_embedded_clip(RunContext(Cache(tmp_path)), OmegaConf.to_container(cfg.clip.train), seed=0)
    assert not list(tmp_path.rglob("*"))  # nothing cached, nothing trained


def _generator_module(compose, generator, *overrides):
    from bench.shift.generators.diffusers_unet import DiffusionModule
    from bench.shift.generators.embedded import training_nodes
    from bench.shift.generators.vae import ConditionalVAE

    cfg = validate(compose(["task=shift", f"generator={generator}", *overrides]), get_task("shift").schemas())
    nodes = training_nodes(cfg.generator)
    module = ConditionalVAE(**nodes, hidden=8) if generator == "vae" else DiffusionModule(**nodes, hidden=8)
    return _configured(module)


def test_the_generator_optimizers_come_from_generator_train(compose):
    opt, sched = _generator_module(compose, "vae")
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["lr"] == 2e-3 and sched is None
    opt, sched = _generator_module(compose, "unet")
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["weight_decay"] == 0.01 and sched is None
    opt, sched = _generator_module(compose, "vae", "generator.train.optim._target_=torch.optim.SGD",
                                   "generator.train.optim.momentum=0.9",
                                   "generator.train.scheduler={_target_: torch.optim.lr_scheduler.StepLR, "
                                   "step_size: 3, gamma: 0.5}")
    assert type(opt) is torch.optim.SGD and opt.param_groups[0]["momentum"] == 0.9
    assert type(sched) is torch.optim.lr_scheduler.StepLR and (sched.step_size, sched.gamma) == (3, 0.5)


def test_a_bogus_generator_optimizer_fails_before_any_training(compose, tmp_path):
    from bench.cache import Cache
    from bench.context import RunContext
    from bench.shift.generators import build_generator

    for generator in ("vae", "unet"):
        cfg = validate(compose(["task=shift", f"generator={generator}", "generator.train.optim._target_=torch.nn.Linear"]),
                       get_task("shift").schemas())
        with pytest.raises(ConfigError, match=r"^generator.train.optim._target_='torch.nn.Linear' is not a "
                                              r"torch.optim optimizer"):
            build_generator(cfg.generator, RunContext(Cache(tmp_path)))
    assert not list(tmp_path.rglob("*"))


def test_a_wrong_scheduler_argument_value_is_one_config_error():
    from bench.training import build_scheduler

    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ConfigError, match=r"^clip.train.scheduler: torch.optim.lr_scheduler.OneCycleLR rejects its "
                                          r"arguments: .*total_steps"):
        build_scheduler({"_target_": "torch.optim.lr_scheduler.OneCycleLR", "max_lr": None, "total_steps": -3},
                        opt, STEPS, "clip.train.scheduler")


@pytest.mark.parametrize(("node", "message"), [
    ({"_target_": "torch.optim.lr_scheduler.StepLR"}, "step_size"),  # a required argument missing
    ({"_target_": "torch.optim.lr_scheduler.OneCycleLR", "max_lr": 0.1, "total_steps": None, "pct_start": 2},
     "pct_start"),  # a wrong value
])
def test_a_scheduler_node_is_built_once_when_checked(node, message):
    """scheduler_node, which tasks call at start, fails on what only building the scheduler finds."""
    from bench.training import scheduler_node

    with pytest.raises(ConfigError, match=rf"^generator.train.scheduler: .* rejects its arguments: .*{message}"):
        scheduler_node(node, "generator.train.scheduler")
