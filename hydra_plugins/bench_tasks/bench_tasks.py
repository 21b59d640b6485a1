"""Hydra finds plugins under ``hydra_plugins``: this exposes bench's (see :mod:`bench.searchpath`)."""
from bench.searchpath import BenchTasksSearchPath, RegistryModels

__all__ = ["BenchTasksSearchPath", "RegistryModels"]
