"""A variant's model kwargs are its own, or model.kwargs for model.name's architecture; never dropped silently."""
import pytest

from bench.config import validate
from bench.errors import ConfigError
from bench.models import create_model, first_conv
from bench.tasks import get_task
from bench.whitening.task import resolve_variants


def _variants(compose, *overrides):
    cfg = compose(["task=whitening", "model=resnet20", *overrides])
    return resolve_variants(validate(cfg, get_task("whitening").load()[1]))


def test_a_variant_gets_its_own_kwargs_or_model_kwargs_for_model_name(compose):
    same, other = _variants(compose, "+model.kwargs.zero_init_residual=true",
                            "task.variants=[{}, {arch: linear_cnn, kwargs: {filters: 16}}]")
    assert (same.arch, same.kwargs) == ("resnet20", {"zero_init_residual": True})
    assert (other.arch, other.kwargs) == ("linear_cnn", {"filters": 16})
    model = create_model(other.arch, num_classes=10, in_chans=3, width=other.width, kwargs=other.kwargs)
    assert first_conv(model).out_channels == 16  # what _train builds: the variant's own kwargs take effect
    (plain,) = _variants(compose, "task.variants=[{arch: linear_cnn}]")  # no model.kwargs: nothing to drop
    assert plain.kwargs == {}


def test_model_kwargs_are_never_silently_dropped_for_another_architecture(compose):
    with pytest.raises(ConfigError, match=r"task.variants\[1\] is linear_cnn, but model.kwargs=\{'zero_init_residual': "
                                          r"True\} are resnet20's; give the variant its own kwargs"):
        _variants(compose, "+model.kwargs.zero_init_residual=true", "task.variants=[{}, {arch: linear_cnn}]")
