"""Every registered model builds, exposes a first conv, and trains one fast_dev_run step on CPU."""
import pytest
import torch
from omegaconf import OmegaConf

from bench.data import ImageDataModule
from bench.errors import ModelError
from bench.models import create_model, first_conv, list_models
from bench.training import ClassifierModule, build_trainer, fit

# Two steps: some families (timm's MLP-Mixer, ViT) zero-initialise their head, so the first step
# cannot reach the first layer.
TRAINER = OmegaConf.create({"accelerator": "cpu", "devices": 1, "fast_dev_run": 2, "enable_progress_bar": False})


class TinyData(ImageDataModule):
    """8 random 32x32 RGB images: two steps of any model."""

    def setup(self, stage=None):
        from bench.data import TensorImages

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
