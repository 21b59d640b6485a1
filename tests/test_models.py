"""Every registered model builds, exposes a first conv, and trains one fast_dev_run step on CPU."""
import pytest
import torch
from omegaconf import OmegaConf

from bench.data.datamodule import ImageDataModule
from bench.errors import ConfigError, ModelError
from bench.models import build_model, create_model, first_conv, list_models
from bench.training import ClassifierModule, build_trainer, fit

# Two steps: some families (timm's MLP-Mixer, ViT) zero-initialise their head, so the first step
# cannot reach the first layer.
TRAINER = OmegaConf.create({"accelerator": "cpu", "devices": 1, "fast_dev_run": 2, "enable_progress_bar": False})


class TinyData(ImageDataModule):
    """8 random 32x32 RGB images: two steps of any model."""

    def setup(self, stage=None):
        from bench.data.datamodule import TensorImages

        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g)
        y = torch.arange(8) % 4
        self.num_classes, self.in_chans = 4, 3
        self.train = self.test = TensorImages(x, y, torch.zeros(3), torch.ones(3))


@pytest.mark.parametrize("name", list_models())
def test_fast_dev_run(name):
    width = 1.0 if name.startswith("tv_") else 0.25
    model = create_model(name, num_classes=4, in_chans=3, width=width)
    conv = first_conv(model)
    assert conv.in_channels == 3
    before = conv.weight.detach().clone()
    dm = TinyData(batch_size=4)
    fit(build_trainer(TRAINER), ClassifierModule(model, 4, optim={"lr": 0.1}), dm)
    assert not torch.equal(before, first_conv(model).weight), "training must move the first layer"


def test_unknown_model_lists_registry():
    with pytest.raises(ModelError, match="unknown model 'resnet21'.*resnet20"):
        create_model("resnet21")


def test_torchvision_model_loads_local_state_dict(tmp_path):
    src = create_model("tv_resnet18", num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    loaded = create_model("tv_resnet18", num_classes=1000, weights=str(path))
    for (k, a), (_, b) in zip(src.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert first_conv(loaded).kernel_size == (7, 7)


def test_torchvision_weights_offline_error_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelError, match="not cached at .*resnet18.*model.weights"):
        create_model("tv_resnet18", num_classes=1000, weights="torchvision")


def test_mismatched_weights_fail_clearly(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(create_model("resnet20", width=0.5).state_dict(), path)
    with pytest.raises(ModelError, match="do not fit this model"):
        create_model("resnet20", width=1.0, weights=str(path))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read weights"):
        create_model("resnet20", weights=str(tmp_path / "junk.pt"))


def made_by_test_factory(name, num_classes, in_chans, width, weights=None, kwargs=None):
    """A ``model._target_`` other than the registry: proves the call sites instantiate the node."""
    raise ModelError(f"built by the test factory: {name} {num_classes} classes, {in_chans} channels, width {width}")


def test_build_model_instantiates_the_model_node_with_the_runs_arguments():
    node = {"_target_": "bench.models.create_model", "name": "linear_cnn", "width": 0.5, "kwargs": {"filters": 16}}
    model = build_model(node, num_classes=7, in_chans=1)
    assert first_conv(model).in_channels == 1 and first_conv(model).out_channels == 8  # 16 filters x width 0.5
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 7)
    with pytest.raises(ModelError, match="built by the test factory: resnet20 7 classes, 1 channels, width 1.0"):
        build_model({"_target_": "tests.test_models.made_by_test_factory"}, num_classes=7, in_chans=1)


def test_build_model_errors_are_one_clear_line():
    with pytest.raises(ModelError, match="unknown model 'resnet21'; registered models: .*resnet20"):
        build_model({"name": "resnet21"}, num_classes=10, in_chans=3)  # not hydra's InstantiationException
    with pytest.raises(ConfigError, match=r"model._target_='bench.models.nope' is not an importable model factory; "
                                          r"use e.g. model._target_=bench.models.create_model"):
        build_model({"_target_": "bench.models.nope"}, num_classes=10, in_chans=3)
    with pytest.raises(ConfigError, match="returned a dict, not a torch nn.Module"):
        build_model({"_target_": "builtins.dict"}, num_classes=10, in_chans=3)


def test_whitening_and_shift_build_their_models_from_the_model_node(compose):
    """Both call sites go through build_model: the node's ``_target_`` takes effect (and a variant's arch/width)."""
    from bench.cli import execute
    from bench.shift.evaluate import train_classifier

    target = "model._target_=tests.test_models.made_by_test_factory"
    with pytest.raises(ModelError, match="test factory: linear_cnn 10 classes, 1 channels, width 0.25"):
        execute(compose(["task=whitening", "data=digits", "data.n_train=64", "data.n_test=32", "model=linear_cnn",
                         "model.width=0.25", "logger=none", "task.variants=[{}]", target]))
    with pytest.raises(ModelError, match="test factory: resnet20 10 classes, 3 channels, width 0.5"):
        train_classifier(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long),
                         {"_target_": "tests.test_models.made_by_test_factory", "width": 0.5}, {}, False,
                         TRAINER, None, 10, seed=0)
    with pytest.raises(ConfigError, match="model._target_='nowhere.model' is not an importable model factory"):
        execute(compose(["task=whitening", "logger=none", "model._target_=nowhere.model"]))
