"""Model registry: ``create_model(name, num_classes=..., in_chans=..., width=...)``.

Importing this package registers every family (one file each)."""
from bench.models import linear_cnn, resnet, torchvision_models, vgg  # noqa: F401  (registration)
from bench.models.registry import create_model, first_conv, list_models, load_weights, n_params, register_model

__all__ = ["create_model", "first_conv", "list_models", "load_weights", "n_params", "register_model"]
