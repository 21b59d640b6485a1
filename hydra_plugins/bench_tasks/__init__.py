"""Hydra plugin: the conf folder of every bench task on the config search path."""
