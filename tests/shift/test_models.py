"""The architectures the shift benchmark adds to the registry: every one runs on 28x28
grayscale and 32x32 RGB, and ``width`` shrinks it to a CPU-sized variant."""
import pytest
import torch

from bench.errors import ModelError
from bench.models import create_model, n_params

NEW = ["densenet", "resnext", "preact_resnet", "mlp_mixer", "vit"]


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_forward_on_small_images(name, shape):
    model = create_model(name, num_classes=7, in_chans=shape[0], width=0.25).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NEW)
def test_width_scales_the_model(name):
    assert n_params(create_model(name, width=0.25)) < n_params(create_model(name, width=0.5))


def test_weights_round_trip(tmp_path):
    model = create_model("mlp_mixer", in_chans=1, width=0.25)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    again = create_model("mlp_mixer", in_chans=1, width=0.25, weights=str(tmp_path / "m.pt"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_mixer_refuses_larger_inputs():
    with pytest.raises(ModelError, match="img_size"):
        create_model("mlp_mixer", width=0.25)(torch.randn(1, 3, 64, 64))
