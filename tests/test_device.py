"""The one device resolver (bench.device): what a config's ``device`` setting runs on, or one clear error."""
import pytest
import torch

from bench.device import resolve_device, trainer_on_cuda
from bench.errors import ConfigError


def test_auto_is_cuda_when_visible_else_the_cpu():
    assert resolve_device("auto", "task.device").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu", "task.device") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a visible GPU: cuda resolves")
@pytest.mark.parametrize("key", ["task.device", "generator.device"])
def test_cuda_without_a_gpu_names_the_setting_and_the_fix(key):
    with pytest.raises(ConfigError, match=rf"^{key}=cuda:1 but no CUDA device is visible; use {key}=auto or {key}=cpu"):
        resolve_device("cuda:1", key)


def test_an_unknown_device_is_a_config_error():
    with pytest.raises(ConfigError, match="generator.device=tpu7 is not a device; use auto, cpu, cuda or cuda:<index>"):
        resolve_device("tpu7", "generator.device")


def test_a_trainer_is_on_cuda_only_with_a_gpu_accelerator_and_a_visible_gpu():
    assert not trainer_on_cuda("cpu")
    assert trainer_on_cuda("auto") == trainer_on_cuda("gpu") == trainer_on_cuda("cuda") == torch.cuda.is_available()
