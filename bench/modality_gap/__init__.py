"""The modality-gap robustness benchmark (Chowers et al., CVPR 2026): measure the gap between
image and text embeddings of contrastive models, close it by post-processing, and measure how
prediction consistency under perturbation of the retrieval modality changes with the gap.
"""
