"""Which prover noise ε gives prover progress a useful signal, and what it costs.

Rewarding Progress (Setlur et al., 2024) argues a prover must be neither too strong nor
too weak. On Household-v0 ``pick`` tasks (one room, 12 turns) we take states along
random-agent episodes and, at each, the progress ``A = Q^μ(s, a) − V^μ(s)`` of the
expert's next command and of a random admissible command, under the noisy expert prover
μ_ε (``rounds.shaping.noisy_prover``) with ``k`` rollouts per value. Reported per ε:

- ``separation``: P(A(expert command) > A(random command)) + ½ P(equal) — 0.5 is no
  signal, 1.0 ranks every good action above the bad one;
- ``nonzero``: the fraction of progress values that are not 0;
- ``ms_per_value``: wall time of one value estimate (``k`` prover rollouts).

Run: ``python benchmarks/prover_epsilon.py [--states 40] [--rollouts 4]``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from rounds.registration import make
from rounds.shaping import noisy_prover, prover_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", type=int, default=40)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--epsilons", default="0,0.1,0.3,0.5,0.7,0.9")
    args = parser.parse_args()
    env: Any = make("rounds/Household-v0", task_types=["pick"], max_rooms=1, max_turns=12).unwrapped
    policies = env.scripted_policies()
    expert, random = policies["expert"], policies["random"]
    # States along random-agent episodes (seeded), kept as snapshots.
    states: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    seed = 0
    while len(states) < args.states:
        env.reset(seed=seed)
        seed += 1
        for _ in range(int(rng.integers(0, 6))):
            if env.episode_ended:
                break
            env.step(random(env, rng))
        if not env.episode_ended:
            states.append(env.snapshot())
    results = []
    for epsilon in [float(e) for e in args.epsilons.split(",")]:
        prover = noisy_prover(expert, epsilon)
        wins = 0.0
        values: list[float] = []
        started = time.perf_counter()
        estimates = 0
        for i, state in enumerate(states):
            prng = np.random.default_rng([i, 1])
            env.restore(state)
            v = prover_value(env, prover, rollouts=args.rollouts, rng=prng)
            advantages = []
            for action in (expert(env, prng), random(env, prng)):
                env.restore(state)
                _, _, _, _, info = env.step(action)
                q = (
                    float(info.get("outcome", 0.0))
                    if env.episode_ended
                    else prover_value(env, prover, rollouts=args.rollouts, rng=prng)
                )
                advantages.append(q - v)
                estimates += 1
            estimates += 1
            good, bad = advantages
            wins += 1.0 if good > bad else 0.5 if good == bad else 0.0
            values += advantages
        elapsed = time.perf_counter() - started
        results.append(
            {
                "epsilon": epsilon,
                "separation": round(wins / len(states), 3),
                "nonzero": round(float(np.mean([v != 0 for v in values])), 3),
                "mean_abs": round(float(np.mean(np.abs(values))), 3),
                "ms_per_value": round(1000 * elapsed / estimates, 2),
            }
        )
        print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
