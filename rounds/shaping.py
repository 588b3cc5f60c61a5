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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

from rounds.records import Episode


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
