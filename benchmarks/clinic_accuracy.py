"""DiagGym-v0: how much the exams matter, measured on the built-in bank's test split.

Usage: python benchmarks/clinic_accuracy.py [--split test] [--tasks 200]

Reports, on the same cases:

- the accuracy of the exact posterior's top diagnosis from the presentation alone
  (the triage note), from the complaint, age band and sex alone (the base-rate
  floor), after the full history, and after the history and the vital signs;
- end to end (one episode per case, at most 12 turns): diagnostic accuracy, turns,
  exams ordered, exam F1 and how often the history was taken, for the scripted
  ``reference``, ``bayes`` and ``random`` agents;
- the single-step variant: the hit ratio of the one exam ordered and the accuracy
  of the diagnoses given, for the same agents.

A benchmark, not a test: the numbers describe the knowledge base, not a pass/fail bar.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

import rounds
from rounds.envs.clinic.cases import bank_case, exam_observations
from rounds.envs.clinic.env import DiagGymEnv
from rounds.envs.clinic.posterior import Posterior


def clinic(env: gym.Env[Any, Any]) -> DiagGymEnv:
    base = env.unwrapped
    assert isinstance(base, DiagGymEnv)
    return base


def presentation_accuracy(env: DiagGymEnv, task_ids: list[str]) -> dict[str, float]:
    """Top-1 accuracy of the exact posterior at each stage of the encounter, before any test.

    ``floor``: complaint, age band and sex; ``triage``: the presentation (the triage
    note, with the volunteered symptoms); then after the full history, and after the
    history and the vital signs.
    """
    kb = env.kb
    hits: dict[str, list[bool]] = {
        "floor": [],
        "triage": [],
        "history": [],
        "history + vitals": [],
    }
    for task_id in task_ids:
        case = bank_case(kb, task_id)
        observed = case.observations()
        base = Posterior(kb)
        base.observe_all({k: observed[k] for k in ("age_band", "sex", "complaint")})
        hits["floor"].append(base.top(1)[0][0] == case.diagnosis)
        posterior = Posterior(kb)
        posterior.observe_all(observed)
        hits["triage"].append(posterior.top(1)[0][0] == case.diagnosis)
        for stage, exam_id in (("history", "history"), ("history + vitals", "vitals")):
            posterior.observe_all(exam_observations(kb, case, exam_id))
            hits[stage].append(posterior.top(1)[0][0] == case.diagnosis)
    return {stage: float(np.mean(flags)) for stage, flags in hits.items()}


def play(
    env: gym.Env[Any, Any], task_ids: list[str], policy: Callable[..., str], seed: int = 0
) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    rows = []
    for task_id in task_ids:
        env.reset(options={"task_id": task_id})
        turns = 0
        while True:
            *_, terminated, truncated, info = env.step(policy(env.unwrapped, rng))
            turns += 1
            if terminated or truncated:
                rows.append({**info["metrics"], "turns": float(turns)})
                break
    return rows


def mean_of(rows: list[dict[str, float]], key: str) -> str:
    values = [r[key] for r in rows if key in r]
    return f"{statistics.fmean(values):.3f} (n={len(values)})" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    env = rounds.make("rounds/DiagGym-v0")
    task_ids = list(clinic(env).task_ids(args.split))[: args.tasks]
    stages = presentation_accuracy(clinic(env), task_ids)
    print(f"# DiagGym-v0 on {len(task_ids)} {args.split} cases")
    print("posterior top-1 accuracy")
    labels = {
        "floor": "complaint, age band and sex only",
        "triage": "the presentation (triage note)",
        "history": "after the full history",
        "history + vitals": "after the history and the vital signs",
    }
    for stage, label in labels.items():
        print(f"  {label:<40} {stages[stage]:.3f}")
    policies = clinic(env).scripted_policies()
    print("\nend to end (max 12 turns; exams ordered and exam F1 leave out the history and vitals)")
    header = f"{'agent':<10} {'accuracy':>18} {'turns':>6} {'exams ordered':>14} {'exam F1':>8}"
    print(f"{header} {'history taken':>14}")
    for name in ("reference", "bayes", "random"):
        rows = play(env, task_ids, policies[name])
        exams = statistics.fmean(r["exams_ordered"] for r in rows)
        turns = statistics.fmean(r["turns"] for r in rows)
        f1 = statistics.fmean(r["exam_f1"] for r in rows)
        history = statistics.fmean(r["history_taken"] for r in rows)
        print(
            f"{name:<10} {mean_of(rows, 'diagnosis_correct'):>18} {turns:>6.2f} {exams:>14.2f}"
            f" {f1:>8.3f} {history:>14.3f}"
        )
    single = rounds.make("rounds/DiagGym-v0", variant="single-step")
    print("\nsingle step (one move after a history from the reference workup)")
    print(f"{'agent':<10} {'hit ratio':>18} {'diagnostic accuracy':>22}")
    for name in ("reference", "bayes", "random"):
        rows = play(single, task_ids, policies[name])
        print(
            f"{name:<10} {mean_of(rows, 'hit_ratio'):>18} {mean_of(rows, 'diagnosis_correct'):>22}"
        )


if __name__ == "__main__":
    main()
