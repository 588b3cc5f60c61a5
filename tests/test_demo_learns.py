"""The demo's ingredients: the choice action mode, held-out success before -> after with a
one-sided test, and curves.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import toy_envs  # noqa: F401  (registers toys/Vowel-v0, an env without a command list)
from PIL import Image

from rounds.agents.registry import make_agent
from rounds.registration import make
from rounds.trainers.curves import before_after, held_out, improvement_p_value, write_curves

DEMO = Path(__file__).resolve().parents[1] / "examples" / "configs" / "demo.yaml"


def choice_env() -> Any:
    return make("rounds/Household-v0", task_types=["pick"], max_rooms=1, action_mode="choice")


def test_choice_mode_numbers_the_admissible_commands() -> None:
    env = choice_env()
    observation, info = env.reset(seed=0)
    commands = env.unwrapped.admissible_commands()
    assert sorted(commands) == sorted(info["admissible_commands"])
    listing = observation.split("Commands:\n", 1)[1].splitlines()
    assert listing[: len(commands)] == [f"{n}. {c}" for n, c in enumerate(commands, start=1)]
    # A number acts as its command does in text mode.
    target = commands.index("look") + 1
    text_env = make("rounds/Household-v0", task_types=["pick"], max_rooms=1)
    text_env.reset(seed=0)
    chosen = env.step(f" {target}. ")
    typed = text_env.step("look")
    assert chosen[0].split("\n\nCommands:")[0] == typed[0]
    assert chosen[1:4] == typed[1:4]


def test_choice_mode_rejects_a_number_out_of_range_and_still_reads_text() -> None:
    env = choice_env()
    env.reset(seed=0)
    count = len(env.unwrapped.choices)
    observation, reward, _, _, info = env.step(str(count + 1))
    assert info["invalid_action"] and reward < 0
    assert f"reply with a number from 1 to {count}" in observation
    _, _, _, _, info = env.step("look")
    assert not info["invalid_action"]


def test_choice_mode_needs_a_command_list() -> None:
    with pytest.raises(ValueError, match="lists no admissible commands"):
        make("toys/Vowel-v0", action_mode="choice")
    with pytest.raises(ValueError, match="unknown action_mode"):
        make("rounds/Household-v0", action_mode="menu")


def test_scripted_expert_answers_with_numbers_and_solves_the_task() -> None:
    env = choice_env()
    agent = make_agent("expert", env.unwrapped)
    from rounds.agents.loop import EpisodeSpec, run_episodes

    rollouts = list(
        run_episodes(
            choice_env,
            agent,
            [EpisodeSpec(task_id=None, seed=s, agent_seed=s) for s in range(4)],
            env_id="rounds/Household-v0",
            concurrency=2,
        )
    )
    for rollout in rollouts:
        assert rollout.episode.metrics["success"] == 1.0
        assert all(t.action.isdigit() for t in rollout.episode.turns)


def rows_with_evaluations(
    before: float, after: float, episodes: int = 32
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {
            "step": -1,
            "phase": "eval_start",
            "eval/success": before,
            "eval/success_low": 0.0,
            "eval/success_high": before + 0.1,
            "eval/episodes": episodes,
        },
    ]
    for step in range(4):
        rows.append(
            {
                "step": step,
                "reward_mean": 0.1 * step,
                "success_rate": 0.2 * step,
                "kl": 0.01 * step,
                "entropy": 1.0 - 0.1 * step,
            }
        )
    rows.append(
        {
            "step": 3,
            "reward_mean": 0.3,
            "eval/success": after,
            "eval/success_low": after - 0.1,
            "eval/success_high": after + 0.1,
            "eval/episodes": episodes,
        }
    )
    return rows


def test_before_after_reports_intervals_and_a_one_sided_test(tmp_path: Path) -> None:
    rows = rows_with_evaluations(0.0625, 0.5)
    before, after = held_out(rows)[0], held_out(rows)[-1]
    assert (before.successes, after.successes) == (2, 16)
    assert improvement_p_value(before, after) < 0.001
    assert improvement_p_value(after, before) > 0.99  # one-sided
    line = before_after(rows)
    assert line is not None and line.startswith("Held-out success 6% [0%, 16%] -> 50% [40%, 60%]")
    assert before_after(rows[:1]) is None
    path = write_curves(rows, tmp_path / "curves.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 1000


def test_tiny_household_preset_reads_household_names_as_single_tokens() -> None:
    """``model: tiny-household`` builds a larger tiny model whose tokenizer knows the
    Household catalog's words, so an episode is fewer tokens than with the base ``tiny``."""
    from transformers import AutoConfig, AutoTokenizer

    from rounds.models.tiny import resolve_model, tiny

    path = resolve_model("tiny-household")
    assert path != str(tiny()) and resolve_model("tiny-household") == path  # built once
    household = AutoTokenizer.from_pretrained(path)
    base = AutoTokenizer.from_pretrained(str(tiny()))
    assert household.tokenize(" toiletpaperhanger") == ["Ġtoiletpaperhanger"]
    assert len(base.tokenize(" toiletpaperhanger")) > 5
    observation, _ = choice_env().reset(seed=0)
    assert len(household(observation)["input_ids"]) < 0.8 * len(base(observation)["input_ids"])
    config = AutoConfig.from_pretrained(path)
    assert (config.num_hidden_layers, config.hidden_size) == (4, 128)
    with pytest.raises(ValueError, match="unknown corpus"):
        tiny(corpus="medical")


def test_tiny_clinic_preset_reads_complaints_as_single_tokens() -> None:
    """``model: tiny-clinic`` (the demo's policy) has the embedded model's shape and a
    tokenizer that knows the clinic's words: a complaint is one token, a prompt half as long."""
    from transformers import AutoConfig, AutoTokenizer

    from rounds.models.tiny import TINY_DEFAULTS, resolve_model, tiny

    path = resolve_model("tiny-clinic")
    clinic, base = AutoTokenizer.from_pretrained(path), AutoTokenizer.from_pretrained(str(tiny()))
    for complaint in (" diarrhea", " dysuria", " flank", " breath"):
        assert len(clinic.tokenize(complaint)) == 1, complaint
    env = make("rounds/DiagGym-v0", variant="five-diagnoses").unwrapped
    observation, _ = env.reset(seed=0)
    text = env.system_prompt + observation
    assert len(clinic(text).input_ids) < 0.6 * len(base(text).input_ids)
    config = AutoConfig.from_pretrained(path)
    assert config.num_hidden_layers == TINY_DEFAULTS["num_hidden_layers"]
    assert config.hidden_size == TINY_DEFAULTS["hidden_size"]


@pytest.mark.slow
def test_a_shortened_demo_raises_held_out_success_significantly(tmp_path: Path) -> None:
    """The demo's configuration with two GRPO steps: held-out success at the end is
    significantly above that before training (one-sided Fisher test at the 5% level on the
    trainer's own two evaluations, not a fixed success threshold). The default seed gives
    0% -> 70%+; the weakest run seen (another seed) 0% -> 12%, p = 0.0065."""
    import yaml

    from rounds.trainers import GRPOConfig, GRPOTrainer

    settings = yaml.safe_load(DEMO.read_text())
    settings |= {
        "output_dir": str(tmp_path / "demo"),
        "steps": 2,
        "eval_every": 2,
        "checkpoint_every": 100,
        "progress": False,
    }
    trainer = GRPOTrainer(config=GRPOConfig(**settings))
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "demo" / "metrics.jsonl").open()]
    evaluations = held_out(rows)
    before, after = evaluations[0], evaluations[-1]
    assert before.step == -1 and after.step == 1 and after.episodes == 56
    assert improvement_p_value(before, after) < 0.05, (before, after)
