"""`rounds`: multi-turn Gymnasium environments for LLM agents, and an agentic GRPO trainer.

``import rounds`` registers every built env with Gymnasium
(``gym.make("rounds/Household-v0")``). The core imports no heavy library
(torch, transformers, vllm, docker, textual); those load only in the parts
that need them.
"""

from rounds.offline import apply_offline_defaults

apply_offline_defaults()

from rounds.actions import InvalidAction
from rounds.records import Episode, TokenUsage, Turn
from rounds.registration import list_envs, make, register_env
from rounds.shaping import RewardShaping
from rounds.spaces import TextSpace
from rounds.storage import RunDir
from rounds.text_env import EpisodeEnd, StepResult, TextEnv

__version__ = "0.1.0"

__all__ = [
    "Episode",
    "EpisodeEnd",
    "InvalidAction",
    "RewardShaping",
    "RunDir",
    "StepResult",
    "TextEnv",
    "TextSpace",
    "TokenUsage",
    "Turn",
    "list_envs",
    "make",
    "register_env",
]

from rounds.registration import register_builtin_envs as _register_builtin_envs

_register_builtin_envs()
