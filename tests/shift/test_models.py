"""The architectures the shift benchmark adds to the registry: every one runs on 28x28
grayscale and 32x32 RGB, and ``width`` shrinks it to a CPU-sized variant."""
import pytest
import torch

from bench.errors import ModelError
from bench.models import create_model, n_params

NEW = ["densenet", "resnext", "preact_resnet", "mlp_mixer", "vit", "shake_shake26"]


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


def test_shake_shake_mixes_branches_randomly_only_in_training():
    """Shake-Shake: a random per-image branch weight in training (two forward passes differ),
    the fixed average at evaluation (deterministic); gradients reach both branches."""
    torch.manual_seed(0)
    model = create_model("shake_shake26", width=0.25)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    block = model.stages[0]
    h = torch.randn(2, 16, 8, 8)
    assert not torch.equal(block(h), block(h))
    model(x).sum().backward()
    assert block.branch1[1].weight.grad.abs().sum() > 0 and block.branch2[1].weight.grad.abs().sum() > 0
    assert sum(1 for m in model.modules() if type(m).__name__ == "ShakeBlock") == 12  # 26 = 2 + 6 * 4
