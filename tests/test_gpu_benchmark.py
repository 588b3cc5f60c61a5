"""benchmarks/gpu.py on CPU: the --smoke run goes through every part the GPU run does, the
budget guard skips parts, and one failing part does not lose the others' rows."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu.py"


def run_script(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OUT": str(out), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_bench"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smoke_run_measures_every_part(tmp_path: Path) -> None:
    done = run_script(tmp_path, "--smoke")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    parts = {(p["part"], p.get("reuse_cache")): p for p in report["parts"]}
    assert list(parts) == [
        ("build", None),
        ("generate", False),
        ("generate", True),
        ("train", None),
    ]
    assert all(p["status"] == "ok" for p in parts.values()), parts
    assert parts[("build", None)]["params"] == report["parts"][1]["params"] > 0
    for reuse in (False, True):
        gen = parts[("generate", reuse)]
        # 4 episodes of 2 turns, replies of at most 8 sampled tokens each.
        assert (gen["episodes"], gen["turns"], len(gen["turn_s"])) == (4, 2, 2)
        assert 0 < gen["generated_tokens"] <= 4 * 2 * 8
        assert gen["generated_tokens_per_s"] == pytest.approx(
            gen["generated_tokens"] / gen["generation_s"]
        )
        assert gen["peak_memory_bytes"] is None  # CPU: no CUDA allocator to ask
    # Only the reuse run reads prompt tokens from held caches (turn 2 of each episode).
    assert parts[("generate", False)]["cache"]["reused_tokens"] == 0
    assert parts[("generate", True)]["cache"]["reused_tokens"] > 0
    train = parts[("train", None)]
    # The update trains on exactly the tokens the first generation run sampled.
    assert train["sequences_from"] == "rollouts"
    assert train["sequences"] == 4
    assert train["trained_tokens"] == parts[("generate", False)]["generated_tokens"]
    assert train["tokens_per_update"] > train["trained_tokens"]  # observations are forwarded too
    assert train["precision"] == "fp32" and train["mfu"] is None
    assert math.isfinite(train["loss"]) and train["update_s"] > 0
    markdown = (tmp_path / "gpu.md").read_text()
    assert "| smoke | 0.21M | False |" in markdown and "| smoke | 0.21M | fp32 |" in markdown
    assert markdown.strip() in done.stdout  # the table is printed last


def test_budget_spent_skips_every_part(tmp_path: Path) -> None:
    done = run_script(tmp_path, "--smoke", "--budget-s", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert [(p["part"], p["status"]) for p in report["parts"]] == [("build", "skipped")]
    assert report["parts"][0]["reason"].startswith("budget:")
    assert "build smoke: skipped: budget" in (tmp_path / "gpu.md").read_text()


def test_failed_part_is_recorded_and_the_next_still_runs(tmp_path: Path) -> None:
    bench_module = load_bench()
    report = bench_module.Report(
        tmp_path,
        {
            "device_name": "CPU",
            "torch": "x",
            "transformers": "y",
            "workload": "w",
            "peak_tflops": 989.0,
        },
    )
    bench = bench_module.Bench(
        device="cpu",
        work=bench_module.Workload(1, 1, 1, 1),
        tokenizer=None,
        budget=bench_module.Budget(60.0),
        report=report,
        peak_tflops=None,
    )

    def broken(row: dict[str, object]) -> None:
        raise RuntimeError("out of memory")

    assert bench_module.run_part(bench, 0.0, {"model": "m", "part": "build"}, broken) is None
    assert bench_module.run_part(bench, 0.0, {"model": "m", "part": "other"}, lambda row: 7) == 7
    assert (
        bench_module.run_part(bench, 120.0, {"model": "m", "part": "late"}, lambda row: 8) is None
    )
    rows = json.loads((tmp_path / "gpu.json").read_text())["parts"]
    assert [(r["part"], r["status"]) for r in rows] == [
        ("build", "failed"),
        ("other", "ok"),
        ("late", "skipped"),
    ]
    assert rows[0]["reason"] == "RuntimeError: out of memory"
    assert "raise RuntimeError" in rows[0]["traceback"]
    assert "- build m: failed: RuntimeError: out of memory" in (tmp_path / "gpu.md").read_text()
