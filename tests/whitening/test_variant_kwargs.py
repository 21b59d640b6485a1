"""A variant's model kwargs are its own, or model.kwargs for model.name's architecture; never dropped silently."""
import pytest

from bench.config import validate
from bench.errors import ConfigError
from bench.models import build_model, first_conv
from bench.tasks import get_task
from bench.whitening.variants import resolve_variants


def _variants(compose, *overrides):
    cfg = compose(["task=whitening", "model=resnet20", *overrides])
    return resolve_variants(validate(cfg, get_task("whitening").load()[1]))


def _built(cfg_model, variant):
    """What _train builds for a variant: the one factory on model.*, the variant's values replacing it."""
    return build_model(cfg_model, name=variant.arch, num_classes=10, in_chans=3, width=variant.width,
                       kwargs=variant.kwargs)


def test_a_variant_gets_its_own_kwargs_or_model_kwargs_for_model_name(compose):
    overrides = ["+model.kwargs.zero_init_residual=true", "task.variants=[{}, {arch: linear_cnn, kwargs: {filters: 16}}]"]
    same, other = _variants(compose, *overrides)
    assert (same.arch, same.kwargs) == ("resnet20", {"zero_init_residual": True})
    assert (other.arch, other.kwargs) == ("linear_cnn", {"filters": 16})
    model_cfg = compose(["task=whitening", "model=resnet20", *overrides]).model
    # the variant's own kwargs take effect and replace model.kwargs (resnet20's would break linear_cnn)
    assert first_conv(_built(model_cfg, other)).out_channels == 16
    (plain,) = _variants(compose, "task.variants=[{arch: linear_cnn}]")  # no model.kwargs: nothing to drop
    assert plain.kwargs == {}


def test_empty_variant_kwargs_mean_none_not_model_kwargs(compose):
    (variant,) = _variants(compose, "model=linear_cnn", "+model.kwargs.filters=16", "task.variants=[{kwargs: {}}]")
    model_cfg = compose(["task=whitening", "model=linear_cnn", "+model.kwargs.filters=16"]).model
    assert first_conv(_built(model_cfg, variant)).out_channels == 64  # linear_cnn's default, not model.kwargs' 16


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
    with pytest.raises(ConfigError, match=r"takes no momentum \(task.variants\[0\].optim.momentum=0.9\)"):
        _variants(compose, "task.variants=[{optim: {_target_: torch.optim.AdamW, momentum: 0.9}}]")


@pytest.mark.parametrize(("variant", "message"), [
    ("{optim: {nesterov: true}}", r"task.variants\[0\].optim: Key 'nesterov' not in 'OptimConfig'"),
    ("{optim: {lr: fast}}", r"task.variants\[0\].optim: Value 'fast'"),
    ("{batch_size: 0}", r"task.variants\[0\].batch_size=0: a batch size is a positive integer"),
])
def test_a_wrong_variant_recipe_is_one_config_error(compose, variant, message):
    with pytest.raises(ConfigError, match=message):
        _variants(compose, f"task.variants=[{variant}]")
