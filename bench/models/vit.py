"""A small Vision Transformer for 28x28 / 32x32 images, built on timm's ``VisionTransformer``
(4x4 patches, 6 blocks, 3 heads; ``dynamic_img_size`` interpolates the position embedding, so
any multiple of the patch size works). ``width`` scales the embedding (192 at width 1)."""
from bench.models.registry import register_model, scaled


@register_model
def vit(num_classes=10, in_chans=3, width=1.0, weights=None, img_size=32, patch_size=4, depth=6, num_heads=3):
    """ViT-Tiny-style: embedding ``num_heads * 64 * width``, ``depth`` blocks, mean-pooled tokens."""
    from timm.models.vision_transformer import VisionTransformer  # here: timm costs ~3 s to import

    return VisionTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
                             embed_dim=num_heads * scaled(64, width), depth=depth, num_heads=num_heads,
                             mlp_ratio=4.0, global_pool="avg", class_token=False, dynamic_img_size=True)
