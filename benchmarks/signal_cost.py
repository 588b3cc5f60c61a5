"""What each learning signal costs per training step on the demo workload.

Runs the demo's config (``examples/configs/demo.yaml``: DiagGym-v0 ``five-diagnoses``,
``tiny-clinic``, 8 tasks x 8 rollouts) without its warm start and evaluations for ``--steps`` steps, once per
signal, and prints each run's mean seconds per step, the part spent on the signal, and
its extra work (prover rollouts, teacher-forced passes). The first run is the baseline.

Run: ``python benchmarks/signal_cost.py [--steps 2]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from rounds.storage import read_yaml
from rounds.trainers import GRPOConfig, GRPOTrainer

DEMO = Path(__file__).resolve().parents[1] / "examples" / "configs" / "demo.yaml"

SIGNALS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "igpo": {"info_gain_weight": 0.1},
    "prover_progress(bayes,k=4,eps=0.3)": {
        "prover_progress": {"prover": "bayes", "rollouts": 4, "epsilon": 0.3}
    },
    "rlpr": {"likelihood": {"rlpr_weight": 1.0}},
    "sar": {"likelihood": {"sar_weight": 0.1}},
    "curriculum": {"curriculum": {"kind": "pass_rate"}},
}


def mean(rows: list[dict[str, Any]], key: str) -> float:
    return sum(float(r.get(key, 0.0)) for r in rows) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    base = read_yaml(DEMO)
    for key in ("warm_start", "eval_every", "eval_at_start"):
        base.pop(key, None)
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in SIGNALS.items():
            rows: list[dict[str, Any]] = []
            config = GRPOConfig(
                **{
                    **base,
                    **extra,
                    "steps": args.steps,
                    "progress": False,
                    "output_dir": str(Path(tmp) / name.split("(")[0]),
                }
            )
            GRPOTrainer(config=config, on_step=rows.append).train()
            print(
                json.dumps(
                    {
                        "signal": name,
                        "s_per_step": round(mean(rows, "time_step"), 2),
                        "s_prover": round(mean(rows, "time_prover"), 2),
                        "prover_rollouts": mean(rows, "prover_rollouts"),
                        "teacher_forced_passes": mean(rows, "likelihood_passes"),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
