"""Datasets: embedded (offline, from PyPI packages) and real (torchvision, ImageFolder)."""
