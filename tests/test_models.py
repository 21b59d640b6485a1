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


FIXED = ("efficientnet_lite0", "keras_cifar_cnn")  # pretrained architectures without a width multiplier


@pytest.mark.integration  # trains every registered model a step
@pytest.mark.parametrize("name", list_models())
def test_fast_dev_run(name):
    torch.manual_seed(0)  # the init: a run is the same every time
    width = 1.0 if name.startswith("tv_") or name in FIXED else 0.25
    model = create_model(name, num_classes=4, in_chans=3, width=width)
    conv = first_conv(model)
    assert conv.in_channels == 3
    before = conv.weight.detach().clone()
    dm = TinyData(batch_size=4)
    # the ImageNet EfficientNet-Lite0 (depthwise convs, batch 4) diverged at lr 0.1 in 1 of 3 runs
    lr = 0.01 if name in FIXED else 0.1
    fit(build_trainer(TRAINER), ClassifierModule(model, 4, optim={"lr": lr}), dm)
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


@pytest.mark.integration
def test_whitening_and_shift_build_their_models_from_the_model_node(compose, tmp_path):
    """Both call sites go through build_model: the node's ``_target_`` takes effect (and a variant's arch/width)."""
    from bench.cache import Cache
    from bench.cli import execute
    from bench.context import RunContext
    from bench.shift.evaluate import train_classifier

    target = "model._target_=tests.test_models.made_by_test_factory"
    with pytest.raises(ModelError, match="test factory: linear_cnn 10 classes, 1 channels, width 0.25"):
        execute(compose(["task=whitening", "data=digits", "data.n_train=64", "data.n_test=32", "model=linear_cnn",
                         "model.width=0.25", "logger=none", "task.variants=[{}]", target]))
    with pytest.raises(ModelError, match="test factory: resnet20 10 classes, 3 channels, width 0.5"):
        train_classifier(RunContext(Cache(tmp_path), trainer_cfg=TRAINER), torch.zeros(4, 3, 8, 8, dtype=torch.uint8),
                         torch.zeros(4, dtype=torch.long),
                         {"_target_": "tests.test_models.made_by_test_factory", "width": 0.5}, {}, False, 10, seed=0)
    with pytest.raises(ConfigError, match="model._target_='nowhere.model' is not an importable model factory"):
        execute(compose(["task=whitening", "logger=none", "model._target_=nowhere.model"]))


def test_vgg_authors_head_and_init():
    """The whitening paper's VGG (chenyaofo's CIFAR VGG): kaiming fan_out convs (first-layer std
    sqrt(2 / (64 * 9)) = 0.059, PyTorch's default ~0.11), a 512-wide 3-layer head with dropout."""
    torch.manual_seed(0)
    authors = create_model("vgg11_bn", kwargs={"head": "mlp", "init": "kaiming_fan_out"})
    default = create_model("vgg11_bn")
    assert float(first_conv(authors).weight.std()) == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.1)
    assert float(first_conv(default).weight.std()) > 0.09
    linears = [m for m in authors.classifier if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [512, 512, 10]
    assert sum(isinstance(m, torch.nn.Dropout) for m in authors.classifier) == 2
    assert all(float(m.bias.abs().max()) == 0 and float(m.weight.std()) == pytest.approx(0.01, rel=0.1) for m in linears)
    with pytest.raises(ModelError, match="vgg head must be one of linear, mlp"):
        create_model("vgg11_bn", kwargs={"head": "deep"})


def test_torchvision_model_declares_its_weights_input():
    """A tv_ model carries the transforms of the weights file it loads (matched by the file's name)."""
    v1 = create_model("tv_mobilenet_v2", num_classes=1000)
    assert v1.input_cfg["mean"] == pytest.approx((0.485, 0.456, 0.406)) and v1.input_cfg["image_size"] == 224
    from bench.models.torchvision_models import _weights_enum

    assert _weights_enum("mobilenet_v2", "/x/mobilenet_v2-b0353104.pth").transforms().resize_size == [256]


def test_keras_h5_without_the_layers_is_a_clear_error(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_group("model_weights").create_group("dense").create_group("dense")
    with pytest.raises(ModelError, match="no Keras layer 'conv2d': not the cifar-10-model CNN"):
        create_model("keras_cifar_cnn", weights=str(path))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelError, match="cannot read weights .*junk.h5 as Keras HDF5"):
        create_model("keras_cifar_cnn", weights=str(tmp_path / "junk.h5"))


def test_keras_h5_round_trip_matches_the_keras_layout(tmp_path):
    """A file in the real Keras layout (HWIO kernels, dense kernels in x out) loads into the torch module."""
    h5py = pytest.importorskip("h5py")
    src = create_model("keras_cifar_cnn").eval()
    with torch.no_grad():
        for m in src.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "cnn_model.h5"
    convs = [m for m in src.features if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in src.features if isinstance(m, torch.nn.BatchNorm2d)]
    denses = [m for m in src.classifier if isinstance(m, torch.nn.Linear)]
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights")

        def put(layer, **arrays):
            g = root.create_group(layer).create_group(layer)
            for name, a in arrays.items():
                g[f"{name}:0"] = a.detach().numpy()

        for i, c in enumerate(convs):
            put("conv2d" + (f"_{i}" if i else ""), kernel=c.weight.permute(2, 3, 1, 0), bias=c.bias)
        for i, b in enumerate(norms):
            put("batch_normalization" + (f"_{i}" if i else ""), gamma=b.weight, beta=b.bias,
                moving_mean=b.running_mean, moving_variance=b.running_var)
        for i, d in enumerate(denses):
            put("dense" + (f"_{i}" if i else ""), kernel=d.weight.T, bias=d.bias)
    loaded = create_model("keras_cifar_cnn", weights=str(path)).eval()
    x = torch.rand(2, 3, 32, 32) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), src(x))
