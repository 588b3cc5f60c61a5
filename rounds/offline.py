"""Offline defaults: `rounds` never reaches the network at run time unless the user asks.

Libraries it drives would otherwise contact hubs or send usage statistics
(Hugging Face Hub, Ray, Weights & Biases, Selenium Manager). These defaults are
set with ``os.environ.setdefault``, so a variable the user set wins (e.g.
``HF_HUB_OFFLINE=0`` to allow downloads).
"""

from __future__ import annotations

import os

OFFLINE_DEFAULTS: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "WANDB_MODE": "offline",
    "SE_OFFLINE": "true",
    "SE_AVOID_STATS": "true",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_defaults() -> None:
    """Set every variable of :data:`OFFLINE_DEFAULTS` that the user has not set."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
