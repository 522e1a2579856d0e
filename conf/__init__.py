"""Hydra configs shipped as package data (reachable as pkg://aecli.conf)."""
