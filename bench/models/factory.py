"""The one model factory: a ``model`` config node built by ``hydra.utils.instantiate``.

Torch and Hydra only, no Lightning: the command line checks a model node before the heavy imports."""
from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_method, instantiate
from torch import nn

from bench.config import ModelConfig, schema_node
from bench.errors import BenchError, ConfigError


def model_node(cfg: Any, key: str = "model") -> dict:
    """The node :func:`build_model` instantiates: ``cfg`` (possibly partial) on :class:`ModelConfig`'s
    defaults, its ``_target_`` checked to name a callable (one :class:`ConfigError` otherwise)."""
    node = schema_node(cfg, ModelConfig)
    try:
        get_method(node["_target_"])
    except Exception:  # hydra wraps the ImportError/AttributeError
        raise ConfigError(f"{key}._target_={node['_target_']!r} is not an importable model factory; "
                          f"use e.g. {key}._target_={ModelConfig._target_}") from None
    return node


def build_model(cfg: Any, key: str = "model", **runtime: Any) -> nn.Module:
    """The one model factory: ``hydra.utils.instantiate`` of a ``model`` node (:class:`ModelConfig`:
    ``_target_`` with ``name``/``width``/``weights``/``kwargs``, i.e. ``bench.models.create_model``) with
    the arguments only the run knows (``num_classes``, ``in_chans``; a caller may also override node
    keys, as a task's per-model variants do). A bench error inside the factory (an unknown model name,
    weights that do not fit) surfaces as itself, not wrapped by hydra."""
    node = model_node(cfg, key)
    # A caller's value for a node key replaces it (instantiate would deep-merge a ``kwargs`` dict into
    # the node's, so a variant's own kwargs would inherit model.kwargs of another architecture).
    node.update({k: runtime.pop(k) for k in list(runtime) if k in node})
    try:
        model = instantiate(node, **runtime, _convert_="all")
    except InstantiationException as e:
        if isinstance(e.__cause__, BenchError):
            raise e.__cause__ from None
        raise
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{key}._target_={node['_target_']} returned a {type(model).__name__}, not a torch "
                          f"nn.Module; use e.g. {key}._target_={ModelConfig._target_}")
    return model
