"""Environments built on :class:`rounds.TextEnv`, one package each."""
