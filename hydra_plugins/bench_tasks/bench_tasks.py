"""Hydra finds search-path plugins under ``hydra_plugins``: this exposes bench's (see :mod:`bench.searchpath`)."""
from bench.searchpath import BenchTasksSearchPath

__all__ = ["BenchTasksSearchPath"]
