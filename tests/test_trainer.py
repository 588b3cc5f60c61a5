"""The GRPO trainer on the tiny model: it learns, resumes exactly, and records its runs."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import toy_envs  # noqa: F401  (registers toys/Vowel-v0 and toys/Vowels3-v0)
from conftest import TOY_TRAINING, TrainedRun

from rounds.models.tiny import TINY_PRESETS
from rounds.shaping import RewardShaping
from rounds.storage import RunDir
from rounds.trainers import GRPOConfig, GRPOTrainer, LoRAConfig, ResumeError
from rounds.trainers.advantages import group_advantages, step_group_advantages
from rounds.trainers.info_gain import answer_logprobs, information_gains, turn_contexts
from rounds.trainers.scoring import shape_group
from rounds.trainers.sequences import build_sequence

TOY = TOY_TRAINING


def trainer(tmp_path: Path, name: str = "run", **settings: object) -> GRPOTrainer:
    return GRPOTrainer(config=GRPOConfig(**{**TOY, "output_dir": str(tmp_path / name), **settings}))


def success_curve(t: GRPOTrainer) -> list[float]:
    curve: list[float] = []
    t.on_step = lambda m: curve.append(m["success_rate"])
    t.train()
    return curve


@pytest.mark.slow
def test_outcome_grpo_learns_a_single_turn_toy(tmp_path: Path) -> None:
    curve = success_curve(trainer(tmp_path, env_id="toys/Vowel-v0", steps=25, learning_rate=2e-2))
    assert (
        np.mean(curve[:3]) < 0.45
    )  # chance: about a quarter of the tiny model's tokens start with a vowel
    assert np.mean(curve[-3:]) >= 0.9


@pytest.mark.slow
def test_turn_level_rewards_learn_a_multi_turn_toy_faster_than_outcome_only(
    tmp_path: Path, vowels3_turn_run: TrainedRun
) -> None:
    outcome_only = success_curve(
        trainer(
            tmp_path,
            "outcome",
            env_id="toys/Vowels3-v0",
            steps=16,
            learning_rate=2e-2,
            advantage="outcome",
            shaping=RewardShaping(weights={"turn": 0.0}),
        )
    )
    turn_level = vowels3_turn_run.curve
    assert len(turn_level) == 16
    assert np.mean(turn_level[-3:]) >= 0.8
    assert np.mean(outcome_only[-3:]) <= 0.3
    first = lambda curve: next((i for i, s in enumerate(curve) if s >= 0.5), len(curve))  # noqa: E731
    assert first(turn_level) < first(outcome_only)


def parameters(t: GRPOTrainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.policy.state_dict().items()}


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_parameters(
    tmp_path: Path, vowels3_turn_run: TrainedRun
) -> None:
    # The uninterrupted run is the shared 16-step one: its weights after step 6 are what six
    # steps of the same settings give (nothing before step 6 depends on the step count).
    settings = {
        **{k: vowels3_turn_run.settings[k] for k in ("env_id", "learning_rate", "advantage")},
        "steps": 6,
        "checkpoint_every": 1,
        "keep_checkpoints": 2,
    }
    expected = vowels3_turn_run.snapshots[6]

    out = tmp_path / "killed"
    script = (
        "import sys, toy_envs\n"
        "from rounds.trainers import GRPOConfig, GRPOTrainer\n"
        f"config = GRPOConfig(**{json.dumps({**TOY, **settings, 'output_dir': str(out)})})\n"
        "GRPOTrainer(config=config).train()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 300
    while not (out / "checkpoints" / "step-000003").exists():
        assert process.poll() is None, "the training process ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = trainer(tmp_path, "killed", **settings)
    assert resumed.start_step >= 3
    resumed.train()
    actual = parameters(resumed)
    assert actual.keys() == expected.keys()
    for key in expected:
        assert torch.equal(actual[key], expected[key]), key
    steps = [row["step"] for row in RunDir(out).metrics()]
    assert steps == list(range(6))  # no step logged twice


def test_training_sequences_are_the_sampled_tokens_not_the_text(tmp_path: Path) -> None:
    t = trainer(tmp_path, env_id="toys/Vowels3-v0", steps=1)
    groups, _ = t.rollout(0)
    rollout = groups[0][0]
    before = build_sequence(rollout, [1.0, 2.0, 3.0])
    for action in rollout.actions:
        action.text = "garbage that would tokenize differently"
    after = build_sequence(rollout, [1.0, 2.0, 3.0])
    assert before == after
    completion = [
        tok for tok, turn in zip(after.input_ids, after.turn_of_token, strict=True) if turn == 1
    ]
    assert completion == rollout.actions[1].token_ids
    trained_logprobs = [lp for lp, m in zip(after.old_logprobs, after.loss_mask, strict=True) if m]
    sampled = [
        lp for a in rollout.actions for lp, m in zip(a.logprobs, a.sampled_mask, strict=True) if m
    ]
    assert trained_logprobs == sampled
    assert {
        a for a, turn in zip(after.advantages, after.turn_of_token, strict=True) if turn == 2
    } <= {3.0, 0.0}


def test_the_rollout_agent_is_built_from_the_config(tmp_path: Path) -> None:
    from rounds.agents import HFAgent

    t = trainer(
        tmp_path,
        env_id="toys/Vowel-v0",
        steps=1,
        temperature=0.7,
        rollout_agent_options={"top_k": 5},
    )
    agent = t.rollout_agent(seed=7)
    assert isinstance(agent, HFAgent) and agent.lm is t.policy  # samples the live weights
    assert (agent.top_k, agent.seed, agent.temperature) == (5, 7, 0.7)
    assert agent.max_new_tokens == t.config.max_new_tokens


def test_nonfinite_loss_is_skipped_not_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rounds.trainers.trainer as module

    t = trainer(tmp_path, env_id="toys/Vowel-v0", steps=1, learning_rate=1e-2)
    original = module.ppo_clip_loss

    def poisoned(*args: object, **kwargs: object) -> object:
        loss, stats = original(*args, **kwargs)
        return loss * float("nan"), stats

    monkeypatch.setattr(module, "ppo_clip_loss", poisoned)
    before = parameters(t)
    metrics = t.train_step(0)
    assert metrics["skipped_nonfinite"] == 1.0
    assert all(torch.equal(before[k], v) for k, v in parameters(t).items())


@pytest.mark.parametrize("env_id", ["rounds/Household-v0", "rounds/DiagGym-v0"])
def test_a_short_run_on_a_real_env_writes_a_valid_run_directory(
    tmp_path: Path, env_id: str
) -> None:
    t = trainer(
        tmp_path,
        env_id=env_id,
        steps=2,
        tasks_per_step=2,
        group_size=2,
        max_new_tokens=6,
        max_turns=3,
        max_episode_tokens=4096,
        checkpoint_every=1,
        learning_rate=1e-3,
    )
    t.train()
    run = RunDir(t.config.output_dir)
    assert run.read_config()["kind"] == "train" and run.read_config()["env_id"] == env_id
    rows = list(run.metrics())
    assert [r["step"] for r in rows] == [0, 1]
    for key in (
        "reward_mean",
        "success_rate",
        "loss",
        "kl",
        "entropy",
        "clip_fraction",
        "tokens_per_s",
        "time_env",
        "time_generation",
        "time_update",
        "pass@1",
        "pass@2",
        "advantage_std",
    ):
        assert key in rows[0] and math.isfinite(rows[0][key]), key
    episodes = list(run.episodes())
    assert len(episodes) == 2 * 2 * 2
    assert all(
        e.meta["step"] in (0, 1) and all(t.advantage is not None for t in e.turns) for e in episodes
    )
    assert (run.checkpoints_path / "step-000002" / "model" / "config.json").exists()


def test_resume_keeps_the_initial_kl_reference_and_takes_a_loaded_model(
    tmp_path: Path, vowel_run: TrainedRun
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rounds.models import resolve_model

    initial, trained = vowel_run.initial, vowel_run.trained
    assert any(not torch.equal(trained[k], initial[k]) for k in initial)
    out = vowel_run.copy_to(tmp_path / "run")
    settings = {**vowel_run.settings, "output_dir": str(out)}

    resumed = GRPOTrainer(config=GRPOConfig(**{**settings, "steps": 2}))
    assert resumed.start_step == 1 and resumed.reference is not None
    reference = {k: v.detach().cpu() for k, v in resumed.reference.state_dict().items()}
    assert all(torch.equal(reference[k], initial[k]) for k in initial)  # not the checkpoint
    assert all(torch.equal(parameters(resumed)[k], trained[k]) for k in trained)

    # A model object the caller loaded (tied embeddings, as in the tiny model and small Qwens).
    path = resolve_model("tiny")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    assert model.config.tie_word_embeddings
    loaded = GRPOTrainer(
        model=model,
        tokenizer=AutoTokenizer.from_pretrained(path),
        config=GRPOConfig(**{**settings, "steps": 2}),
    )
    assert loaded.start_step == 1
    assert all(p.dtype == torch.float32 for p in loaded.policy.parameters())  # master weights
    assert all(torch.equal(parameters(loaded)[k], trained[k]) for k in trained)


def test_resume_refuses_settings_that_change_the_run(tmp_path: Path, vowel_run: TrainedRun) -> None:
    out = vowel_run.path  # refusals write nothing, so the shared run is used in place
    saved = (out / "config.yaml").read_text()
    base = {**vowel_run.settings, "output_dir": str(out)}
    for changes, named in (
        ({"env_id": "toys/Vowels3-v0"}, ["env_id ('toys/Vowel-v0' -> 'toys/Vowels3-v0')"]),
        ({"group_size": 4, "seed": 3}, ["group_size (8 -> 4)", "seed (0 -> 3)"]),
        ({"shaping": RewardShaping(gate_threshold=0.5)}, ["shaping ("]),
        ({"model": str(tmp_path / "another-model")}, ["model ('tiny' -> "]),
    ):
        with pytest.raises(ResumeError) as refused:
            GRPOTrainer(config=GRPOConfig(**{**base, **changes}))
        message = str(refused.value)
        assert all(name in message for name in named), message
        assert "resume: false" in message and "steps" in message  # what to do, what may change
    assert (out / "config.yaml").read_text() == saved  # not overwritten by a refused resume

    # Safe changes resume: more steps, logging, checkpoint and evaluation cadence.
    copy = vowel_run.copy_to(tmp_path / "safe")
    safe = GRPOTrainer(
        config=GRPOConfig(
            **{
                **base,
                "output_dir": str(copy),
                "steps": 5,
                "log_episodes": False,
                "checkpoint_every": 2,
                "eval_every": 3,
                "progress": False,
            }
        )
    )
    assert safe.start_step == 1 and RunDir(copy).read_config()["steps"] == 5


def test_an_unreadable_config_refuses_to_resume_with_the_reason(
    tmp_path: Path, vowel_run: TrainedRun
) -> None:
    from typer.testing import CliRunner

    from rounds.cli import app

    out = vowel_run.copy_to(tmp_path / "run")
    settings = {**vowel_run.settings, "output_dir": str(out), "steps": 2}
    for damage, reason in (
        ("env_id: [unclosed\n", "unreadable"),
        ("- a list\n- of things\n", "not a mapping"),
        ("group_size: many\n", "not a valid training config"),
    ):
        (out / "config.yaml").write_text(damage)
        with pytest.raises(ResumeError, match=reason):
            GRPOTrainer(config=GRPOConfig(**settings))
        assert (out / "config.yaml").read_text() == damage
    (out / "config.yaml").write_bytes(b"\xff\xfe not text")
    result = CliRunner().invoke(
        app,
        ["train", "--env", "toys/Vowel-v0", "--steps", "2", "--out", str(out)],
        terminal_width=400,
    )
    assert result.exit_code == 2 and "unreadable" in result.output, result.output
    assert "resume: false" in result.output


def test_the_python_api_shows_progress_while_it_trains(
    tmp_path: Path,
    vowel_run: TrainedRun,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    out = vowel_run.copy_to(tmp_path / "run")
    caplog.set_level(logging.INFO, logger="rounds.trainers")
    GRPOTrainer(
        config=GRPOConfig(**{**vowel_run.settings, "output_dir": str(out), "steps": 2})
    ).train()
    shown = capsys.readouterr().out
    assert "Resuming from step 1" in shown
    assert "GRPO step" in shown and "2/2" in shown and "reward" in shown and "loss" in shown
    assert any(r.getMessage().startswith("step 2/2: reward") for r in caplog.records)

    # progress: false draws nothing (the log lines stay).
    quiet = vowel_run.copy_to(tmp_path / "quiet")
    settings = {**vowel_run.settings, "output_dir": str(quiet), "steps": 2, "progress": False}
    GRPOTrainer(config=GRPOConfig(**settings)).train()
    assert "GRPO step" not in capsys.readouterr().out


def test_held_out_evaluation_matches_rounds_eval_of_the_checkpoint(
    tmp_path: Path, vowel_run: TrainedRun
) -> None:
    from rounds.agents.evaluate import EvalConfig, evaluate

    out = vowel_run.copy_to(tmp_path / "run")
    config = GRPOConfig(
        **{
            **vowel_run.settings,
            "output_dir": str(out),
            "steps": 2,
            "eval_every": 2,
            "eval_tasks": 3,
            "eval_samples_per_task": 2,
            "progress": False,
        }
    )
    GRPOTrainer(config=config).train()
    during = [row for row in RunDir(out).metrics() if "eval/success" in row]
    assert [row["step"] for row in during] == [1]
    # rounds eval of the saved weights, with the trainer's sampling settings and one batch.
    summary = evaluate(
        EvalConfig(
            env_id=config.env_id,
            agent="hf",
            agent_options={
                "model": str(out / "checkpoints" / "step-000002" / "model"),
                "max_new_tokens": config.max_new_tokens,
                "max_context_tokens": config.max_episode_tokens,
                "max_episode_tokens": config.max_episode_tokens,
                "seed": config.seed,
            },
            split=config.eval_split,
            tasks=3,
            samples_per_task=2,
            seed=config.seed,
            concurrency=6,
        ),
        tmp_path / "eval",
    )
    row = during[0]
    assert row["eval/success"] == pytest.approx(summary["metrics"]["success"]["value"])
    for k in ("1", "2"):
        assert row[f"eval/pass@{k}"] == pytest.approx(summary["pass_at_k"][k]["value"])
    tasks = {e.task_id for e in RunDir(tmp_path / "eval").episodes()}
    assert tasks == {"validation-0", "validation-1", "validation-2"}  # the split's first three


def test_lora_kl_and_step_groups(tmp_path: Path) -> None:
    settings = {
        "env_id": "toys/Vowels3-v0",
        "steps": 2,
        "learning_rate": 1e-2,
        "kl_coef": 0.1,
        "step_group_weight": 0.5,
        "advantage": "turn",
        "lora": LoRAConfig(r=4, alpha=8),
        "checkpoint_every": 1,
    }
    t = trainer(tmp_path, **settings)
    base = {k: v.clone() for k, v in t.policy.state_dict().items() if "lora" not in k}

    # step_group_weight adds w * A^S to every turn's advantage: turns 2 and 3 of the toy see the
    # same observation in every episode of a group, so they form anchor groups.
    groups, _ = t.rollout(0)
    scored = [t.score(group) for group in groups]
    t.advantages(scored)
    effect = 0.0
    for group in scored:
        rewards = [item.turn_rewards for item in group]
        outcomes = [item.shaped.outcome for item in group]
        observations = [[turn.observation for turn in item.rollout.episode.turns] for item in group]
        plain = group_advantages(rewards, outcomes, observations, estimator="turn")
        anchored = step_group_advantages(observations, rewards, outcomes)
        for item, a, s in zip(group, plain, anchored, strict=True):
            recorded = [turn.advantage for turn in item.rollout.episode.turns]
            np.testing.assert_allclose(recorded, a + 0.5 * s, atol=1e-6)
            effect += float(np.abs(s).sum())
    assert effect > 0  # the anchor term changed some advantages

    metrics = t.train()
    assert metrics["kl"] > 0
    after = t.policy.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base.items())  # the base weights stay frozen
    assert (
        Path(t.config.output_dir) / "checkpoints" / "step-000002" / "model" / "adapter_config.json"
    ).exists()
    resumed = trainer(tmp_path, **{**settings, "steps": 3})
    assert resumed.start_step == 2
    lora_keys = [k for k in after if "lora" in k]
    assert lora_keys and all(
        torch.equal(resumed.policy.state_dict()[k], after[k]) for k in lora_keys
    )


def test_information_gain_is_the_change_in_answer_probability() -> None:
    assert information_gains([math.log(0.1), math.log(0.3), math.log(0.2)]) == pytest.approx(
        [0.2, -0.1, 0.0]
    )
    assert information_gains([math.log(0.1), math.log(0.3)], kind="logprob") == pytest.approx(
        [math.log(3), 0.0]
    )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rounds.models import tiny

    model = AutoModelForCausalLM.from_pretrained(tiny())
    tokenizer = AutoTokenizer.from_pretrained(tiny())
    contexts = [
        tokenizer("The answer is").input_ids,
        tokenizer("Patient with fever. The answer is").input_ids,
    ]
    answer = tokenizer(" pneumonia").input_ids
    got = answer_logprobs(model, contexts, answer, pad_id=tokenizer.pad_token_id)
    for context, value in zip(contexts, got, strict=True):
        with torch.no_grad():
            logits = model(torch.tensor([context + answer])).logits[0]
        logp = torch.log_softmax(logits, -1)
        manual = np.mean([float(logp[len(context) - 1 + j, answer[j]]) for j in range(len(answer))])
        assert value == pytest.approx(manual, abs=1e-5)


def test_igpo_on_diaggym_adds_per_turn_information_gain(tmp_path: Path) -> None:
    t = trainer(
        tmp_path,
        env_id="rounds/DiagGym-v0",
        steps=1,
        tasks_per_step=1,
        group_size=2,
        max_new_tokens=6,
        max_turns=3,
        max_episode_tokens=4096,
        info_gain_weight=0.5,
        info_gain_kind="logprob",  # a random tiny model gives its answers p ~ 1e-3
        advantage="turn",
    )
    groups, _ = t.rollout(0)
    scored = t.score(groups[0])
    gains: list[float] = []
    for item, shaped in zip(scored, shape_group(groups[0], t.config.shaping), strict=True):
        rollout = item.rollout
        answer = rollout.episode.meta["reset_info"]["answer"]
        contexts = turn_contexts(rollout)
        assert answer and len(contexts) >= 2
        # log p_t from a teacher-forced pass of the answer after each turn;
        # gain_t = log p_{t+1} - log p_t (the last turn answers, and gains nothing).
        logps = answer_logprobs(
            t.policy,
            contexts,
            t.tokenizer(answer, add_special_tokens=False).input_ids,
            pad_id=t.tokenizer.pad_token_id,
        )
        expected = [b - a for a, b in itertools.pairwise(logps)] + [0.0]
        assert item.info_gains == pytest.approx(expected, abs=1e-6)
        # Each turn's reward is the shaped reward plus 0.5 x its gain.
        assert item.turn_rewards == pytest.approx(
            [r + 0.5 * g for r, g in zip(shaped.turn_rewards, expected, strict=True)], abs=1e-6
        )
        gains += expected
    assert any(abs(g) > 1e-5 for g in gains)  # small for a random model, far above float noise
    metrics = t.train()
    assert math.isfinite(metrics["info_gain_mean"])


def test_config_loads_from_yaml_and_rejects_unknown_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "env_id: rounds/Household-v0\nsteps: 3\nshaping:\n  gate_threshold: 0.5\nlora:\n  r: 8\n"
    )
    config = GRPOConfig.from_yaml(path, output_dir="x")
    assert (
        config.steps == 3
        and config.shaping.gate_threshold == 0.5
        and config.lora.r == 8
        and config.output_dir == "x"
    )
    path.write_text("stepz: 3\n")
    with pytest.raises(ValueError, match="stepz"):
        GRPOConfig.from_yaml(path)
    # The rollout agent comes from the config; only agents that sample the live policy, and
    # only options that leave the sampling distribution to the trainer's settings.
    assert GRPOConfig(rollout_agent_options={"top_k": 50}).rollout_agent == "hf"
    with pytest.raises(ValueError, match="cannot sample from the trainer's live weights"):
        GRPOConfig(rollout_agent="openai")
    with pytest.raises(ValueError, match="may not set temperature"):
        GRPOConfig(rollout_agent_options={"temperature": 0.5})


def test_report_to_feeds_the_trackers_and_a_missing_package_fails_before_any_change(
    tmp_path: Path, vowel_run: TrainedRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    from rounds.trainers.metrics import MetricTrackers

    logged: list[tuple[dict[str, float], int]] = []
    finished: list[bool] = []

    class FakeRun:
        def log(self, values: dict[str, float], step: int) -> None:
            logged.append((values, step))

        def finish(self) -> None:
            finished.append(True)

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: FakeRun()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    trackers = MetricTrackers(["wandb"], tmp_path, {"seed": 0})
    trackers.log({"step": 3, "loss": 0.5, "phase": "warm_start", "done": True}, 3)
    trackers.close()
    assert logged == [({"step": 3.0, "loss": 0.5}, 3)] and finished == [True]

    # Without the tensorboard package: refused before the old run in output_dir is cleared.
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = vowel_run.copy_to(tmp_path / "run")
    settings = {**vowel_run.settings, "output_dir": str(out), "resume": False}
    with pytest.raises(ImportError, match="pip install tensorboard"):
        GRPOTrainer(config=GRPOConfig(**settings, report_to=["tensorboard"]))
    assert list(RunDir(out).metrics())  # the earlier run's rows are still there
    # An old config's tensorboard: true loads as report_to.
    assert GRPOConfig(tensorboard=True, wandb=False).report_to == ["tensorboard"]


def test_rounds_train_cli_with_a_config_file_and_flags(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rounds.cli import app

    config = tmp_path / "train.yaml"
    config.write_text(
        "env_id: toys/Vowel-v0\nmodel: tiny\ngroup_size: 4\ntasks_per_step: 2\nmax_new_tokens: 4\nmax_episode_tokens: 256\n"
    )
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        ["train", str(config), "--steps", "2", "--out", str(out), "-s", "learning_rate=0.01"],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "rounds replay" in result.output and "over 2 steps" in result.output
    saved = RunDir(out).read_config()
    assert saved["steps"] == 2 and saved["learning_rate"] == 0.01 and saved["group_size"] == 4
    bad = CliRunner().invoke(app, ["train", str(config), "-s", "group_size=1"], terminal_width=400)
    assert bad.exit_code == 2 and "group_size" in bad.output
    missing = CliRunner().invoke(app, ["train", str(tmp_path / "nope.yaml")], terminal_width=400)
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_warm_start_clones_a_scripted_baseline_once(tmp_path: Path) -> None:
    from rounds.trainers import WarmStart

    settings = {
        "env_id": "rounds/DiagGym-v0",
        "env_kwargs": {"list_exams": False},
        "steps": 1,
        "tasks_per_step": 1,
        "group_size": 2,
        "max_new_tokens": 8,
        "max_turns": 2,
        "max_episode_tokens": 2048,
        "use_tools": False,
        "warm_start": WarmStart(
            policy="bayes", episodes=8, epochs=3, learning_rate=3e-3, micro_batch_size=4
        ),
    }
    epochs: list[float] = []
    t = trainer(tmp_path, **settings)
    t.on_warm_start = lambda epoch, loss: epochs.append(loss)
    t.train()
    assert len(epochs) == 3 and epochs[-1] < epochs[0]
    rows = list(RunDir(t.config.output_dir).metrics())
    assert [r["phase"] for r in rows if "phase" in r] == ["warm_start"] * 3 and rows[-1][
        "step"
    ] == 0
    again = trainer(tmp_path, **{**settings, "steps": 2})
    assert again.resumed and again.start_step == 1
    again.train()
    assert (
        sum(1 for r in RunDir(t.config.output_dir).metrics() if r.get("phase")) == 3
    )  # not cloned twice

    # Killed after the warm start, before any GRPO step: the resumed run keeps the clone.
    killed = trainer(tmp_path / "killed", **settings)
    killed.warm_start()
    resumed = trainer(tmp_path / "killed", **settings)
    assert resumed.resumed and resumed.start_step == 0
    for a, b in zip(killed.policy.parameters(), resumed.policy.parameters(), strict=True):
        assert torch.equal(a, b)

    # A fresh run (resume: false) in a used directory starts a clean log; files that
    # rounds did not write stay, and nothing is removed when the settings are bad.
    out = Path(t.config.output_dir)
    (out / "checkpoints" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="split"):
        trainer(tmp_path, **{**settings, "resume": False, "split": "nope"})
    assert list(RunDir(out).metrics())
    fresh = trainer(tmp_path, **{**settings, "warm_start": None, "resume": False})
    assert not fresh.resumed and fresh.start_step == 0
    assert list(RunDir(out).metrics()) == [] and not RunDir(out).episodes_path.exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["notes.txt"]


def test_demo_config_is_valid() -> None:
    import gymnasium as gym

    config = GRPOConfig.from_yaml(Path(__file__).parents[1] / "examples" / "configs" / "demo.yaml")
    # A locally built tiny model (no download), a cold start to learn from, a registered env,
    # a fresh run each time.
    assert config.model in TINY_PRESETS and config.warm_start is not None and not config.resume
    assert config.env_id in gym.registry
