"""Bridges from ``rounds`` envs to other training libraries (each imports its library lazily)."""
