"""Reward shaping: from an env's raw reward components to the rewards a trainer optimises.

Envs emit raw components per turn (``info["reward_components"]``); shaping is a
separate, configurable step so a trainer can re-shape recorded episodes without
re-running them. Each formula is a small pure function below, and
:class:`RewardShaping` composes them over an :class:`~rounds.records.Episode`.

- Weighted sum: ``r_t = Σ_c w_c · x_{t,c}``.
- Gated reward accumulation (G-RA): ``r~_t = r_t · 1[R_outcome ≥ δ]``,
  ``R = R_outcome + Σ_t r~_t``. With several channels in priority order, a
  channel is zeroed if any higher-priority channel scores below its threshold.
- Potential-based shaping: ``F_t = γ Φ(s_{t+1}) − Φ(s_t)``, with ``Φ = 0`` at a
  terminal state, which leaves the optimal policy unchanged (Ng et al., 1999).
- Bounded process rewards (Gao et al., 2024): Clip ``min(r_t − η, 0)`` and Delta
  ``r_t − r_{t+1}``, so that repeating a rewarded step cannot pay.
- Prover progress (Rewarding Progress, Setlur et al., 2024): ``A_t = Q^μ(s_t, a_t) −
  V^μ(s_t)`` from a prover's rollouts out of env snapshots (:func:`prover_progress`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from rounds.records import Episode

if TYPE_CHECKING:
    from rounds.text_env import ScriptedPolicy, TextEnv


def weighted_reward(components: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """``r = Σ_c w_c · x_c``; a component without a weight counts zero."""
    return float(sum(weights.get(name, 0.0) * value for name, value in components.items()))


def gated_accumulate(
    turn_rewards: Sequence[float], outcome: float, threshold: float
) -> tuple[list[float], float]:
    """Gated reward accumulation (G-RA) of turn-level rewards.

    ``r~_t = r_t · 1[R_outcome ≥ δ]`` and ``R = R_outcome + Σ_t r~_t``: immediate
    rewards only count in episodes whose outcome reached the threshold ``δ``, so a
    policy cannot farm them while failing the task.

    Returns:
        ``(gated turn rewards, total return R)``.
    """
    keep = outcome >= threshold
    gated = [float(r) if keep else 0.0 for r in turn_rewards]
    return gated, float(outcome + sum(gated))


def priority_gates(scores: Sequence[float], thresholds: Sequence[float | None]) -> list[bool]:
    """Which reward channels stay open, channels ordered from highest priority.

    Channel ``k`` is open iff every higher channel ``j < k`` has ``S_j ≥ δ_j``
    (a ``None`` threshold never closes the channels below it). The first channel
    is always open. With channels ``[outcome, turn]`` and thresholds ``[δ, None]``
    this is :func:`gated_accumulate`.
    """
    if len(scores) != len(thresholds):
        raise ValueError(f"{len(scores)} channel scores but {len(thresholds)} thresholds")
    gates: list[bool] = []
    is_open = True
    for score, threshold in zip(scores, thresholds, strict=True):
        gates.append(is_open)
        if threshold is not None and score < threshold:
            is_open = False
    return gates


def clip_process_rewards(rewards: Sequence[float], eta: float = 0.0) -> list[float]:
    """Clip mechanism for process rewards: ``r~_t = min(r_t − η, 0)``.

    From Gao et al. (2024), "On Designing Effective RL Reward at Training Time for LLM
    Reasoning": with every step's reward at most 0, the sum over a trajectory is bounded
    above, so a policy cannot earn more by repeating a rewarded step (or by adding steps).
    """
    return [min(float(r) - eta, 0.0) for r in rewards]


def delta_process_rewards(rewards: Sequence[float]) -> list[float]:
    """Delta mechanism for process rewards: ``r~_t = r_t − r_{t+1}`` (``t < T−1``), ``r~_{T−1} = r_{T−1}``.

    From the same paper: the return from any step telescopes to that step's own reward,
    ``Σ_{k≥t} r~_k = r_t``, so the total is bounded by one step's reward however many
    rewarded steps the trajectory repeats.
    """
    values = [float(r) for r in rewards]
    return [values[t] - values[t + 1] for t in range(len(values) - 1)] + values[-1:]


def potential_shaping(
    potentials: Sequence[float], *, gamma: float = 1.0, terminal: bool = True
) -> list[float]:
    """Potential-based shaping terms ``F_t = γ Φ(s_{t+1}) − Φ(s_t)``.

    Args:
        potentials: ``Φ(s_0), ..., Φ(s_T)``, one more than the number of turns.
        gamma: the discount ``γ``.
        terminal: the episode ended in a terminal state, whose potential is taken
            as 0 so that ``Σ_t γ^t F_t = −Φ(s_0)`` and the optimal policy is unchanged.

    Returns:
        ``T`` shaping terms, one per turn.
    """
    phi = [float(p) for p in potentials]
    if len(phi) < 2:
        return []
    if terminal:
        phi[-1] = 0.0
    return [gamma * phi[t + 1] - phi[t] for t in range(len(phi) - 1)]


class GateChannel(BaseModel):
    """A channel of turn-level components below the outcome in the gating priority order."""

    components: list[str] = Field(description="Reward components summed into this channel.")
    threshold: float | None = Field(
        default=None,
        description="Lower-priority channels are zeroed when this channel's episode sum is below it.",
    )


class ShapedEpisode(BaseModel):
    """An episode's rewards after shaping."""

    outcome: float = Field(description="R_outcome: the weighted outcome components.")
    turn_rewards: list[float] = Field(description="r~_t: immediate rewards per turn after gating.")
    total: float = Field(description="R = R_outcome + Σ r~_t.")


class RewardShaping(BaseModel):
    """How recorded reward components become a trainer's rewards.

    With the defaults, the shaped total equals the env's own reward sum: the env's
    weights, no gate, no potential term.
    """

    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Component weights; override the env's defaults recorded in the episode.",
    )
    outcome_components: list[str] | None = Field(
        default=None,
        description="Components that form R_outcome (default: the env's, recorded in the episode).",
    )
    gate_threshold: float | None = Field(
        default=None,
        description="G-RA threshold δ on R_outcome; None accumulates turn rewards ungated.",
    )
    gate_channels: list[GateChannel] = Field(
        default_factory=list,
        description="Turn-component channels in priority order below the outcome, each with a threshold.",
    )
    potential_key: str | None = Field(
        default=None,
        description="Info key holding the state potential Φ; None disables shaping by Φ.",
    )
    potential_gamma: float = Field(default=1.0, description="γ of the potential-based term.")
    potential_weight: float = Field(default=1.0, description="Weight of the potential-based term.")
    process_bound: Literal["clip", "delta"] | None = Field(
        default=None,
        description=(
            "Bound the turn (process) rewards so repeating a rewarded step cannot pay: clip "
            "(min(r − η, 0)) or delta (r_t − r_{t+1}); None leaves them as they are."
        ),
    )
    process_clip_eta: float = Field(default=0.0, description="η of the clip mechanism.")

    def episode_weights(self, episode: Episode) -> dict[str, float]:
        """The env's recorded default weights, overridden by :attr:`weights`."""
        recorded = episode.meta.get("reward_weights") or {}
        return {**{str(k): float(v) for k, v in recorded.items()}, **self.weights}

    def episode_outcome_components(self, episode: Episode) -> list[str]:
        """The components that make up R_outcome for ``episode``."""
        if self.outcome_components is not None:
            return list(self.outcome_components)
        return [str(c) for c in episode.meta.get("outcome_components") or ["outcome"]]

    def shape(self, episode: Episode) -> ShapedEpisode:
        """Shape one recorded episode: weights, then gating, then the potential term."""
        weights = self.episode_weights(episode)
        outcome_names = set(self.episode_outcome_components(episode))

        def channel_reward(components: Mapping[str, float], names: set[str]) -> float:
            return weighted_reward({k: v for k, v in components.items() if k in names}, weights)

        outcome = sum(channel_reward(t.reward_components, outcome_names) for t in episode.turns)
        if self.gate_channels:
            # With explicit channels, only the components a channel names count.
            channels = [
                [
                    channel_reward(t.reward_components, set(c.components) - outcome_names)
                    for t in episode.turns
                ]
                for c in self.gate_channels
            ]
            gates = priority_gates(
                [outcome] + [sum(rewards) for rewards in channels],
                [self.gate_threshold] + [c.threshold for c in self.gate_channels],
            )[1:]
            turn_rewards = [
                sum(rewards[t] for rewards, is_open in zip(channels, gates, strict=True) if is_open)
                for t in range(len(episode.turns))
            ]
        else:
            turn_names = {k for t in episode.turns for k in t.reward_components} - outcome_names
            turn_rewards = [channel_reward(t.reward_components, turn_names) for t in episode.turns]
            if self.gate_threshold is not None:
                turn_rewards, _ = gated_accumulate(turn_rewards, outcome, self.gate_threshold)
        if self.process_bound == "clip":
            turn_rewards = clip_process_rewards(turn_rewards, self.process_clip_eta)
        elif self.process_bound == "delta":
            turn_rewards = delta_process_rewards(turn_rewards)
        if self.potential_key is not None:
            reset_info = episode.meta.get("reset_info") or {}
            potentials = [float(reset_info.get(self.potential_key, 0.0))]
            potentials += [float(t.info.get(self.potential_key, 0.0)) for t in episode.turns]
            terms = potential_shaping(
                potentials, gamma=self.potential_gamma, terminal=not episode.truncated
            )
            turn_rewards = [
                r + self.potential_weight * f for r, f in zip(turn_rewards, terms, strict=True)
            ]
        return ShapedEpisode(
            outcome=outcome, turn_rewards=turn_rewards, total=outcome + sum(turn_rewards)
        )


# ---------------------------------------------------------------------------- prover progress


def noisy_prover(prover: ScriptedPolicy, epsilon: float) -> ScriptedPolicy:
    """``prover`` that takes a uniformly random admissible command with probability ε.

    Rewarding Progress (Setlur et al., 2024) finds that a prover must be neither too
    strong nor too weak: one that almost always succeeds makes ``Q`` and ``V`` nearly
    equal, so the progress it measures is close to zero. ε tunes the strength of a
    scripted (privileged) policy; an env that cannot list its commands keeps the prover's.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")

    def act(env: TextEnv, rng: np.random.Generator) -> str:
        if epsilon > 0 and rng.random() < epsilon:
            commands = env.admissible_commands()
            if commands:
                return str(commands[int(rng.integers(len(commands)))])
        return prover(env, rng)

    return act


def prover_value(
    env: Any, prover: ScriptedPolicy, *, rollouts: int, rng: np.random.Generator
) -> float:
    """``V^μ(s)``: the prover's mean outcome over ``rollouts`` rollouts from ``env``'s current
    state (restored from one snapshot before each), which must be inside an episode."""
    if env.episode_ended:
        raise ValueError("prover_value needs a state inside an episode, not an ended one")
    start = env.snapshot()
    total = 0.0
    for _ in range(rollouts):
        env.restore(start)
        outcome = 0.0
        while not env.episode_ended:
            _, _, _, _, info = env.step(prover(env, rng))
            outcome = float(info.get("outcome", 0.0))
        total += outcome
    env.restore(start)
    return total / rollouts


def prover_progress(
    env_factory: Callable[[], Any],
    prover: ScriptedPolicy | str,
    episode: Episode,
    *,
    rollouts: int = 4,
    epsilon: float = 0.0,
    seed: int = 0,
) -> list[float]:
    """Per-turn progress ``A_t = Q^μ(s_t, a_t) − V^μ(s_t)`` of a recorded episode under a prover μ.

    Rewarding Progress (Setlur et al., 2024, "Rewarding Progress: Scaling Automated
    Process Verifiers for LLM Reasoning") and MRT: an action's process reward is the
    change in a prover policy's chance of success. The episode is replayed in a fresh env
    (same seed, task and actions; the env must be deterministic given them); at each state
    the env is snapshotted and the prover rolled out ``rollouts`` times. The envs'
    transitions are deterministic given the action, so ``Q^μ(s_t, a_t) = V^μ(s_{t+1})`` and
    ``T + 1`` value estimates serve ``T`` turns; the state after the last turn is worth the
    episode's outcome. Cost: ``rollouts · (T + 1)`` prover rollouts per episode (fewer at the
    end), each at most the turns left.

    Args:
        env_factory: builds an env of the episode's env id and settings (wrapped or not).
        prover: a scripted policy ``(env, rng) -> action`` or the name of one of the env's.
        episode: the recorded episode (``task_id``, ``seed`` and each turn's ``action``).
        rollouts: prover rollouts per state (``k``).
        epsilon: the prover's chance of a random admissible command (:func:`noisy_prover`).
        seed: seeds the prover's randomness (with the turn index).

    Raises:
        ValueError: the env has no snapshots or the replay does not reproduce the record.
    """
    if rollouts < 1:
        raise ValueError(f"rollouts must be at least 1, got {rollouts}")
    wrapped = env_factory()
    env = wrapped.unwrapped
    try:
        if not (hasattr(env, "snapshot") and hasattr(env, "restore")):
            raise ValueError(
                f"{type(env).__name__} has no snapshot()/restore(), which prover rollouts need"
            )
        policy = env.scripted_policies()[prover] if isinstance(prover, str) else prover
        policy = noisy_prover(policy, epsilon)
        options = {"task_id": episode.task_id} if episode.task_id is not None else None
        observation, _ = env.reset(seed=episode.seed, options=options)
        values = [prover_value(env, policy, rollouts=rollouts, rng=_rng(seed, 0))]
        for t, turn in enumerate(episode.turns):
            if env.episode_ended:
                break
            if observation != turn.observation:
                raise ValueError(
                    f"replaying episode {episode.id} in {type(env).__name__} gave another "
                    f"observation at turn {t}: the env is not deterministic given seed, task "
                    "and actions, so prover rollouts cannot start from its states"
                )
            observation, _, _, _, info = env.step(turn.action)
            if env.episode_ended:
                values.append(float(info.get("outcome", 0.0)))
            else:
                values.append(prover_value(env, policy, rollouts=rollouts, rng=_rng(seed, t + 1)))
    finally:
        wrapped.close()
    progress = [values[t + 1] - values[t] for t in range(len(values) - 1)]
    return progress + [0.0] * (len(episode.turns) - len(progress))


def _rng(seed: int, turn: int) -> np.random.Generator:
    return np.random.default_rng([seed, turn])
