"""Rollout servers: the trainer generating on a local server (SGLang's endpoints) on 127.0.0.1,
weight sync after each update, a server that restarts mid-step, truncated importance sampling,
and the rollout settings' refusals."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import toy_envs  # noqa: F401  (registers toys/Vowel-v0 and toys/Vowels3-v0)
from conftest import TOY_TRAINING
from pydantic import ValidationError

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from rounds.agents.hf import HFAgent
from rounds.agents.loop import EpisodeSpec, run_episodes
from rounds.agents.server_agent import RolloutServerClient, RolloutServerError, ServerAgent
from rounds.models import load_model_and_tokenizer
from rounds.models.rollout_protocol import GenerateRequest, SamplingParams
from rounds.models.serve import BackgroundServer, GenerationServer
from rounds.registration import make
from rounds.trainers import GRPOConfig, GRPOTrainer, ResumeError
from rounds.trainers.loss import token_logprobs
from rounds.trainers.off_policy import importance_corrected, truncated_importance_weights
from rounds.trainers.sequences import TrainSequence, collate
from rounds.trainers.weight_sync import BroadcastWeightSync, DiskWeightSync


class WatchedServer(GenerationServer):
    """The local server, recording the weights it generated with (and optionally restarting
    its HTTP front once, mid-step, as a crashed and relaunched server would)."""

    def __init__(self) -> None:
        super().__init__("tiny")
        #: ``(weight_version, a copy of the weights)`` at each /generate call.
        self.seen: list[tuple[str, dict[str, torch.Tensor]]] = []
        self.on_generate: Any = None

    def generate(self, request: GenerateRequest) -> list[dict[str, Any]]:
        self.seen.append(
            (self.weight_version, {k: v.clone() for k, v in self.lm.state_dict().items()})
        )
        if self.on_generate is not None:
            self.on_generate(len(self.seen))
        return super().generate(request)


@pytest.fixture
def server() -> Iterator[tuple[WatchedServer, BackgroundServer]]:
    watched = WatchedServer()
    front = BackgroundServer(watched)
    front.start()
    try:
        yield watched, front
    finally:
        front.stop()


def settings(tmp_path: Path, url: str, **extra: Any) -> GRPOConfig:
    return GRPOConfig(
        **{
            **TOY_TRAINING,
            "env_id": "toys/Vowels3-v0",
            "tasks_per_step": 2,
            "group_size": 4,
            "steps": 2,
            "learning_rate": 2e-2,
            "progress": False,
            "output_dir": str(tmp_path / "run"),
            "rollout": {"backend": "server", "base_url": url, "retry_backoff_s": 0.1},
            **extra,
        }
    )


def weights(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("weight_sync", ["disk", "gloo"])
def test_the_trainer_generates_on_the_server_and_syncs_weights_after_each_update(
    tmp_path: Path, server: tuple[WatchedServer, BackgroundServer], weight_sync: str
) -> None:
    watched, front = server
    rollout = {"backend": "server", "base_url": front.url, "weight_sync": weight_sync}
    trainer = GRPOTrainer(config=settings(tmp_path, front.url, rollout=rollout))
    initial = weights(trainer.policy)
    after_step: list[dict[str, torch.Tensor]] = []
    rows: list[dict[str, Any]] = []

    def on_step(metrics: dict[str, Any]) -> None:
        rows.append(metrics)
        after_step.append(weights(trainer.policy))

    trainer.on_step = on_step
    trainer.train()

    # Step 0 generated with the trainer's initial weights (pushed before the first rollout),
    # step 1 with the weights of step 0's update: each /generate saw the trainer's weights.
    versions = sorted({version for version, _ in watched.seen})
    assert versions == ["update-000000.push-00001", "update-000001.push-00002"]
    for version, seen in watched.seen:
        assert_same_weights(seen, initial if version.endswith("00001") else after_step[0])
    assert not all(torch.equal(initial[k], after_step[0][k]) for k in initial)  # it trained

    # Rewards and tokens are recorded; the engine's log-probs match the trainer's.
    assert [row["step"] for row in rows] == [0, 1]
    for row in rows:
        assert row["untrainable_episodes"] == 0.0
        assert row["tokens_trained"] > 0
        assert 0.0 <= row["reward_mean"] <= 4.0
        assert row["time_weight_sync"] > 0.0
        assert row["engine_logprob_diff_mean"] < 1e-3
        assert row["is_weight_mean"] == pytest.approx(1.0, abs=1e-3)
    episodes = trainer.run.path / "episodes.jsonl"
    assert len(episodes.read_text().splitlines()) == 2 * 2 * 4

    if weight_sync == "disk":  # only the last push stays, as safetensors the server loaded
        pushes = sorted(p.name for p in (trainer.run.path / "weight_sync").iterdir())
        assert pushes == ["update-000001.push-00002"]
        assert (trainer.run.path / "weight_sync" / pushes[0] / "model.safetensors").exists()
    else:  # broadcast: nothing on disk
        assert not (trainer.run.path / "weight_sync").exists()

    # A last sync leaves the server with exactly the trained weights.
    assert trainer.engine is not None
    trainer.engine.sync(trainer.policy, "final")
    assert_same_weights(weights(watched.lm), weights(trainer.policy))


def test_a_server_that_restarts_mid_step_gets_the_weights_again_and_the_step_completes(
    tmp_path: Path, server: tuple[WatchedServer, BackgroundServer]
) -> None:
    watched, front = server
    relaunched = WatchedServer()  # a restarted server serves its launch weights again

    def restart() -> None:
        front.stop()
        time.sleep(0.3)
        front.server = relaunched
        front.start()

    # The second /generate of step 1 (a three-turn episode batch) takes the server down.
    calls_before_step1: list[int] = []

    def on_generate(call: int) -> None:
        if calls_before_step1 and call == calls_before_step1[0] + 2:
            threading.Thread(target=restart, daemon=True).start()
            # Answer only once the shutdown has begun (uvicorn notices it within 0.1 s), so
            # the next request cannot reach this server on a kept-alive connection.
            time.sleep(0.5)

    watched.on_generate = on_generate
    trainer = GRPOTrainer(config=settings(tmp_path, front.url))
    rows: list[dict[str, Any]] = []

    def on_step(metrics: dict[str, Any]) -> None:
        rows.append(metrics)
        calls_before_step1.append(len(watched.seen))

    trainer.on_step = on_step
    trainer.train()

    assert [row["step"] for row in rows] == [0, 1]
    assert rows[1]["rollout_retries"] >= 1
    assert rows[1]["untrainable_episodes"] == 0.0
    # The relaunched server was given the step's weights before it generated anything.
    assert relaunched.seen, "the relaunched server generated nothing"
    assert {version for version, _ in relaunched.seen} == {"update-000001.push-00002"}
    expected = watched.seen[-1][1]
    for _, seen in relaunched.seen:
        assert_same_weights(seen, expected)


def test_a_server_that_stays_down_fails_the_run_with_a_clear_message(tmp_path: Path) -> None:
    front = BackgroundServer(WatchedServer())
    front.start()
    url = front.url
    front.stop()  # nothing listens there any more
    config = settings(tmp_path, url, rollout={"backend": "server", "base_url": url, "retries": 2})
    config.rollout.retry_backoff_s = 0.01
    trainer = GRPOTrainer(config=config)
    with pytest.raises(RolloutServerError, match=r"did not answer .* after 3 tries"):
        trainer.train()

    client = RolloutServerClient(url, retries=1, retry_backoff_s=0.01)
    with pytest.raises(RolloutServerError, match=r"start it .*rollout\.base_url"):
        client.generate([[1, 2]], [SamplingParams()])
    assert client.retried == 1


def test_server_episodes_are_the_tokens_the_hf_agent_samples_greedily(
    server: tuple[WatchedServer, BackgroundServer],
) -> None:
    _, front = server
    model, tokenizer = load_model_and_tokenizer("tiny")
    specs = [EpisodeSpec(task_id=f"train-{i}", seed=i, agent_seed=i) for i in range(3)]

    def episodes(agent: Any) -> list[Any]:
        rollouts = run_episodes(
            lambda: make("toys/Vowels3-v0"),
            agent,
            specs,
            env_id="toys/Vowels3-v0",
            concurrency=3,
            straggler_s=None,
        )
        return sorted(rollouts, key=lambda r: str(r.episode.task_id))

    options = {"max_new_tokens": 6, "temperature": 0.0, "max_context_tokens": 512}
    hf = episodes(HFAgent(model_obj=model, tokenizer=tokenizer, **options))
    served = episodes(ServerAgent("tiny", base_url=front.url, tokenizer=tokenizer, **options))
    for a, b in zip(hf, served, strict=True):
        assert [x.prompt_ids for x in a.actions] == [x.prompt_ids for x in b.actions]
        assert [x.token_ids for x in a.actions] == [x.token_ids for x in b.actions]
        for x, y in zip(a.actions, b.actions, strict=True):
            assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)


def test_truncated_importance_weights_on_a_hand_computed_case() -> None:
    trainer = torch.tensor([-1.0, -0.5, -2.0])
    engine = torch.tensor([-1.0, -2.0, -1.0])
    weights = truncated_importance_weights(trainer, engine, cap=3.0)
    # exp(0) = 1; exp(1.5) = 4.48 is cut to the cap 3; exp(-1) = 0.368
    assert weights.tolist() == pytest.approx([1.0, 3.0, math.exp(-1.0)])


def test_importance_correction_replaces_old_logprobs_and_weights_advantages() -> None:
    model, tokenizer = load_model_and_tokenizer("tiny")
    ids = tokenizer("a short episode of tokens", add_special_tokens=False).input_ids
    mask = [0, 0] + [1] * (len(ids) - 2)
    batch = collate(
        [TrainSequence(ids, mask, [0.0] * len(ids), [0.0] * len(ids), [0] * len(ids))],
        pad_id=0,
        device="cpu",
    )
    with torch.no_grad():
        own, _ = token_logprobs(
            model, batch["input_ids"], batch["attention_mask"], batch["targets"], 1.0
        )
    own_list = own.tolist()
    # The engine gave the first trained token half the trainer's probability (weight 2),
    # the second a sixth (weight 6, cut to 3), the rest the same (weight 1).
    shifts = [math.log(2.0), math.log(6.0)] + [0.0] * (len(own_list) - 2)
    engine = [0.0, 0.0] + [lp - s for lp, s in zip(own_list, shifts, strict=True)]
    sequence = TrainSequence(ids, mask, engine, [0.0, 0.0] + [0.5] * (len(ids) - 2), [0] * len(ids))
    (corrected,), stats = importance_corrected(
        model, [sequence], cap=3.0, temperature=1.0, pad_id=0, device="cpu", micro_batch_size=4
    )
    assert corrected.old_logprobs[2:] == pytest.approx(own_list, abs=1e-5)
    assert corrected.advantages[:2] == [0.0, 0.0]
    assert corrected.advantages[2:4] == pytest.approx([1.0, 1.5], abs=1e-4)
    assert corrected.advantages[4:] == pytest.approx([0.5] * (len(ids) - 4), abs=1e-4)
    n = len(own_list)
    assert stats["is_truncated_fraction"] == pytest.approx(1 / n)
    assert stats["is_weight_mean"] == pytest.approx((2 + 3 + (n - 2)) / n, abs=1e-4)
    assert stats["engine_logprob_diff_mean"] == pytest.approx(sum(shifts) / n, abs=1e-4)


def test_importance_correction_keeps_the_input_order_across_length_sorted_micro_batches() -> None:
    model, tokenizer = load_model_and_tokenizer("tiny")
    texts = ["short one", "a much longer episode of several more tokens here", "mid sized text"]
    sequences = []
    for k, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False).input_ids
        n = len(ids)
        engine = [0.0] + [-1.0 - 0.1 * k] * (n - 1)
        sequences.append(TrainSequence(ids, [0] + [1] * (n - 1), engine, [1.0] * n, [0] * n))
    together, _ = importance_corrected(
        model, sequences, cap=3.0, temperature=1.0, pad_id=0, device="cpu", micro_batch_size=2
    )
    for sequence, corrected in zip(sequences, together, strict=True):
        (alone,), _ = importance_corrected(
            model, [sequence], cap=3.0, temperature=1.0, pad_id=0, device="cpu", micro_batch_size=1
        )
        assert corrected.input_ids == sequence.input_ids
        assert corrected.old_logprobs == pytest.approx(alone.old_logprobs, abs=1e-5)
        assert corrected.advantages == pytest.approx(alone.advantages, abs=1e-4)


def test_rollout_settings_refuse_what_is_not_built_or_incomplete() -> None:
    with pytest.raises(ValidationError, match=r"needs rollout\.base_url"):
        GRPOConfig(rollout={"backend": "server"})
    with pytest.raises(ValidationError, match="'nccl' broadcasts to a rollout server"):
        GRPOConfig(rollout={"backend": "vllm", "weight_sync": "nccl"})
    with pytest.raises(ValidationError, match="weight_sync"):
        GRPOConfig(rollout={"backend": "server", "base_url": "http://x", "weight_sync": "mpi"})
    with pytest.raises(ValidationError, match=r"base_url is set but rollout\.backend is 'hf'"):
        GRPOConfig(rollout={"base_url": "http://127.0.0.1:1"})
    with pytest.raises(ValidationError, match="LoRA"):
        GRPOConfig(rollout={"backend": "vllm"}, lora={"r": 4})
    # A config written before `rollout` still loads.
    assert GRPOConfig(rollout_agent="hf").rollout.backend == "hf"
    assert GRPOConfig().rollout_agent == "hf"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_the_vllm_backend_without_vllm_says_how_to_get_it(tmp_path: Path) -> None:
    config = GRPOConfig(
        **{**TOY_TRAINING, "output_dir": str(tmp_path), "rollout": {"backend": "vllm"}}
    )
    with pytest.raises(ImportError, match=r"pip install 'rounds\[vllm\]' on a GPU machine"):
        GRPOTrainer(config=config)
    assert not (tmp_path / "config.yaml").exists()  # refused before touching the run


def test_the_local_server_refuses_what_it_cannot_do_and_keeps_its_weights(
    tmp_path: Path, server: tuple[WatchedServer, BackgroundServer]
) -> None:
    watched, front = server
    http = httpx.Client(base_url=front.url, trust_env=False)
    before = weights(watched.lm)
    unknown = http.post("/generate", json={"input_ids": [1], "sampling_params": {"stop": "x"}})
    assert unknown.status_code == 422
    outside = http.post("/generate", json={"input_ids": [10**9], "return_logprob": True})
    assert outside.status_code == 400 and "vocabulary" in outside.json()["error"]["message"]
    single = http.post(
        "/generate",
        json={
            "input_ids": [1, 2, 3],
            "sampling_params": {"max_new_tokens": 3},
            "return_logprob": True,
        },
    ).json()
    assert isinstance(single, dict) and len(single["meta_info"]["output_token_logprobs"]) <= 3
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"not safetensors")
    for path in (tmp_path / "missing", tmp_path / "bad"):
        answer = http.post("/update_weights_from_disk", json={"model_path": str(path)}).json()
        assert answer["success"] is False and answer["message"]
    assert http.get("/get_model_info").json()["weight_version"] == "default"
    assert_same_weights(weights(watched.lm), before)
    http.close()


@pytest.mark.slow
def test_python_m_serve_binds_loopback_and_answers(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "rounds.models.serve", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("rounds rollout server: tiny on http://127.0.0.1:"), line
        url = line.rsplit(" ", 1)[1].strip()
        assert httpx.get(url + "/health", trust_env=False).json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_run_resumes_on_a_relaunched_server_at_another_address(
    tmp_path: Path, server: tuple[WatchedServer, BackgroundServer]
) -> None:
    watched, front = server
    GRPOTrainer(config=settings(tmp_path, front.url, steps=1, checkpoint_every=1)).train()
    front.stop()
    moved = BackgroundServer(watched)  # the same model, relaunched on another port
    with moved.running() as url:
        assert url != front.url
        resumed = GRPOTrainer(config=settings(tmp_path, url, steps=2, checkpoint_every=1))
        assert resumed.start_step == 1
        resumed.train()
        assert watched.seen[-1][0] == "update-000001.push-00001"
        changed = settings(tmp_path, url, steps=3)
        changed.rollout.importance_sampling_cap = 2.0
        with pytest.raises(ResumeError, match="rollout"):
            GRPOTrainer(config=changed)


def test_a_restart_between_two_calls_is_noticed_by_the_weight_version(
    tmp_path: Path, server: tuple[WatchedServer, BackgroundServer]
) -> None:
    watched, front = server
    launch = weights(watched.lm)
    trained, _ = load_model_and_tokenizer("tiny")
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.01)
    client = RolloutServerClient(front.url, retries=2, retry_backoff_s=0.01)
    DiskWeightSync(client, tmp_path / "sync").push(trained, "step-1")
    # The server comes back with its launch weights, and no request failed to tell.
    watched.lm.load_state_dict(launch)
    watched.weight_version = "default"
    client.generate([[1, 2, 3]], [SamplingParams(max_new_tokens=2)])
    assert [version for version, _ in watched.seen] == ["default", "step-1.push-00001"]
    assert_same_weights(watched.seen[-1][1], weights(trained))
    assert client.retried == 1
    client.close()


def test_a_restarted_server_that_lost_broadcast_weights_stops_the_run_with_the_reason(
    tmp_path: Path, server: tuple[WatchedServer, BackgroundServer]
) -> None:
    watched, front = server
    trained, _ = load_model_and_tokenizer("tiny")
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.01)
    client = RolloutServerClient(front.url, retries=1, retry_backoff_s=0.01)
    version = BroadcastWeightSync(client, "gloo").push(trained, "step-1")
    assert watched.weight_version == version == "step-1.push-00001"
    assert_same_weights(weights(watched.lm), weights(trained))
    watched.weight_version = "default"  # as after a restart: the broadcast weights are gone
    with pytest.raises(RolloutServerError, match="use weight_sync disk for a server that may"):
        client.generate([[1, 2, 3]], [SamplingParams(max_new_tokens=2)])
    client.close()
