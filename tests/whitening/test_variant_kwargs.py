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


def test_a_variant_may_train_with_its_own_recipe(compose):
    """loss, optim (merged onto task.optim), batch_size and first_layer_init_scale: the variant's own,
    else the study's; a wrong one fails before any data or training."""
    study, linear = _variants(compose, "task.variants=[{}, {arch: linear_cnn, loss: mse, optim: {lr: 0.5, momentum: 0.0}, "
                                       "batch_size: 7, first_layer_init_scale: 0.01}]")
    assert (study.loss, study.optim["lr"], study.batch_size, study.init_scale) == ("ce", 0.01, 256, 1.0)
    assert (linear.loss, linear.optim["lr"], linear.optim["momentum"], linear.batch_size, linear.init_scale) == (
        "mse", 0.5, 0.0, 7, 0.01)
    assert linear.optim["_target_"] == study.optim["_target_"] == "torch.optim.SGD"
    with pytest.raises(ConfigError, match="a variant's loss must be one of ce, mse, not 'l1'"):
        _variants(compose, "task.variants=[{loss: l1}]")
    with pytest.raises(ConfigError, match=r"takes no momentum \(task.variants\[0\].optim.momentum=0.9\)"):
        _variants(compose, "task.variants=[{optim: {_target_: torch.optim.AdamW, momentum: 0.9}}]")
