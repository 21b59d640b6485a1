"""Model registry: ``create_model(name, num_classes=..., in_chans=..., width=...)``; ``build_model(cfg,
num_classes=..., in_chans=...)`` instantiates a ``model`` config node (whose ``_target_`` is ``create_model``).

Importing this package registers every family (one file each)."""
from bench.models import densenet, efficientnet_lite, keras_cifar10, linear_cnn, mlp_mixer, preact_resnet, resnet, resnext, shake_shake, torchvision_models, vgg, vit  # noqa: F401,E501  (registration)
from bench.models.factory import build_model, model_node
from bench.models.registry import create_model, first_conv, list_models, load_weights, n_params, register_model

__all__ = ["build_model", "create_model", "first_conv", "list_models", "load_weights", "model_node", "n_params",
           "register_model"]
