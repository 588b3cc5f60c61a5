"""rounds.integrations.trl: a rounds env's tools as a TRL environment_factory, and TRL training on it."""

from __future__ import annotations

import json
import os
from typing import Any, Literal

import pytest

import rounds
from rounds.integrations.trl import (
    ToolEnvironment,
    environment_factory,
    json_schema_type,
    task_rows,
    tool_method,
)

ENV_ID = "rounds/DiagGym-v0"
SETTINGS: dict[str, Any] = {"list_exams": False, "max_turns": 4}


@pytest.fixture(scope="module")
def diag_class() -> type[ToolEnvironment]:
    return environment_factory(ENV_ID, **SETTINGS)


def direct_env() -> Any:
    return rounds.make(ENV_ID, **SETTINGS)


def test_the_class_has_one_method_per_tool(diag_class: type[ToolEnvironment]) -> None:
    assert diag_class.__name__ == "DiagGymV0Environment"
    assert [spec["name"] for spec in diag_class.tool_specs] == ["order_exam", "diagnose"]
    env = diag_class()
    assert callable(env.order_exam) and callable(env.diagnose)  # type: ignore[attr-defined]


def test_reset_returns_the_envs_first_observation(diag_class: type[ToolEnvironment]) -> None:
    task = task_rows(ENV_ID, 1, seed=3, **SETTINGS)[0]
    expected, _ = direct_env().reset(options={"task_id": task["task_id"]})
    env = diag_class()
    # TRL passes the whole dataset row as keyword arguments.
    assert env.reset(**task) == expected
    assert env.observation == expected and env.rewards == [] and not env.done
    # A seed column alone reproduces the env's seeded reset.
    assert env.reset(seed=11) == direct_env().reset(seed=11)[0]


def test_a_tool_call_steps_the_env_and_returns_its_observation(
    diag_class: type[ToolEnvironment],
) -> None:
    task_id = task_rows(ENV_ID, 1, seed=5, **SETTINGS)[0]["task_id"]
    reference = direct_env()
    reference.reset(options={"task_id": task_id})
    env = diag_class()
    env.reset(task_id=task_id)

    calls = [
        ("order_exam", {"exam": "Complete blood count"}),
        ("diagnose", {"diagnosis": "Pneumonia"}),
    ]
    expected_rewards = []
    for name, arguments in calls:
        observation, reward, terminated, truncated, info = reference.step(
            json.dumps({"name": name, "arguments": arguments})
        )
        assert getattr(env, name)(**arguments) == observation
        expected_rewards.append(reward)
        assert env.terminated == terminated and env.truncated == truncated
        assert env.infos[-1]["reward_components"] == info["reward_components"]
    assert env.rewards == pytest.approx(expected_rewards)
    assert env.done and env.terminated
    # The episode's return: the sum of the turn rewards (the final one holds the outcome).
    assert env.get_reward() == pytest.approx(sum(expected_rewards))
    assert env.get_reward() >= 0.1  # a diagnosis was given (DiagAgent's completion bonus)


def test_a_call_after_the_end_is_not_applied(diag_class: type[ToolEnvironment]) -> None:
    env = diag_class()
    env.reset(seed=1)
    for _ in range(SETTINGS["max_turns"]):
        env.order_exam(exam="Lactate")  # type: ignore[attr-defined]
    assert env.truncated and len(env.rewards) == SETTINGS["max_turns"]
    reward = env.get_reward()
    message = env.diagnose(diagnosis="Sepsis")  # type: ignore[attr-defined]
    assert "episode is over" in message and "turn limit" in message
    assert len(env.rewards) == SETTINGS["max_turns"] and env.get_reward() == reward


def test_arguments_reach_the_env_as_given(diag_class: type[ToolEnvironment]) -> None:
    """The env judges the model's arguments (an empty one is an invalid action with a hint;
    one the schema does not name is passed on): no Python TypeError ends the rollout."""
    reference = direct_env()
    reference.reset(seed=2)
    env = diag_class()
    env.reset(seed=2)
    observation = env.order_exam(exam="")  # type: ignore[attr-defined]
    assert env.infos[-1]["invalid_action"] is True
    assert (
        observation
        == reference.step(json.dumps({"name": "order_exam", "arguments": {"exam": ""}}))[0]
    )
    assert not env.done
    observation = env.order_exam(test="CBC")  # type: ignore[attr-defined]
    expected = reference.step(json.dumps({"name": "order_exam", "arguments": {"test": "CBC"}}))
    assert observation == expected[0] and env.rewards[-1] == expected[1]


def test_calling_a_tool_before_reset_says_so(diag_class: type[ToolEnvironment]) -> None:
    with pytest.raises(Exception, match="reset"):
        diag_class().order_exam(exam="Lactate")  # type: ignore[attr-defined]


def test_methods_give_transformers_the_envs_tool_schema(
    diag_class: type[ToolEnvironment],
) -> None:
    from transformers.utils import get_json_schema

    env = diag_class()
    for spec in env.env.unwrapped.tools:  # type: ignore[attr-defined]
        function = spec["function"]
        schema = get_json_schema(getattr(env, function["name"]))["function"]
        assert schema["name"] == function["name"]
        assert schema["description"] == function["description"]
        params = function["parameters"]
        assert schema["parameters"]["required"] == params["required"]
        for name, prop in params["properties"].items():
            assert schema["parameters"]["properties"][name] == {
                "type": prop["type"],
                "description": prop["description"],
            }


def test_optional_enum_and_array_parameters_keep_their_json_types() -> None:
    from transformers.utils import get_json_schema

    spec = {
        "name": "move",
        "description": "Move a piece.",
        "parameters": {
            "type": "object",
            "properties": {
                "direction": {"type": "string", "enum": ["up", "down"], "description": "Where."},
                "steps": {"type": "integer", "description": "How far."},
                "marks": {"type": "array", "items": {"type": "number"}, "description": "Marks."},
            },
            "required": ["direction"],
        },
    }
    schema = get_json_schema(tool_method(spec))["function"]["parameters"]
    assert schema["required"] == ["direction"]
    assert schema["properties"]["direction"]["enum"] == ["up", "down"]
    assert schema["properties"]["steps"] == {
        "type": "integer",
        "nullable": True,
        "description": "How far.",
    }
    assert schema["properties"]["marks"]["items"] == {"type": "number"}
    assert json_schema_type({"enum": ["a", "b"]}) == Literal["a", "b"]
    assert json_schema_type({"type": ["string", "null"]}) == str | None


@pytest.mark.parametrize("name", ["reset", "get_reward", "_hidden", "not-a-name", "class", "env"])
def test_tool_names_that_cannot_be_methods_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=name if name.isidentifier() else "identifier"):
        tool_method({"name": name, "parameters": {"type": "object", "properties": {}}})


def test_an_env_without_tools_is_refused() -> None:
    with pytest.raises(ValueError, match="no tools"):
        environment_factory("rounds/Household-v0")


def test_task_rows_give_each_group_one_task() -> None:
    rows = task_rows(ENV_ID, 5, seed=7, **SETTINGS)
    assert rows == task_rows(ENV_ID, 5, seed=7, **SETTINGS)
    assert rows != task_rows(ENV_ID, 5, seed=8, **SETTINGS)
    env = direct_env().unwrapped
    system, tasks = env.system_prompt, set(env.task_ids("train"))
    for row in rows:
        assert row["prompt"] == [
            {"role": "system", "content": system},
            {"role": "user", "content": ""},
        ]
        assert row["task_id"] in tasks
    assert len({row["task_id"] for row in rows}) == 5


@pytest.mark.slow
def test_trl_grpo_trainer_trains_on_the_env(tmp_path: Any) -> None:
    """Two GRPOTrainer steps with environment_factory on the embedded tiny model."""
    pytest.importorskip("trl", reason="TRL is the rounds[trl] extra")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rounds.integrations.trl import use_chatml_tool_parser
    from rounds.models import tiny

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    base = environment_factory(ENV_ID, **SETTINGS)
    played: list[str] = []

    class Recorded(base):  # type: ignore[valid-type, misc]
        def reset(self, task_id: str | None = None, seed: int | None = None, **row: Any) -> str:
            played.append(str(task_id))
            return super().reset(task_id=task_id, seed=seed, **row)

    rows = task_rows(ENV_ID, 4, seed=0, **SETTINGS)
    path = str(tiny())
    tokenizer = use_chatml_tool_parser(AutoTokenizer.from_pretrained(path))
    tokenizer.padding_side = "left"
    config = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=16,
        max_tool_calling_iterations=2,
        learning_rate=1e-5,
        beta=0.0,
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        environment_factory=Recorded,
    )
    assert sorted(tool.__name__ for tool in trainer.tools) == ["diagnose", "order_exam"]
    trainer.train()
    assert trainer.state.global_step == 2
    logged = [row for row in trainer.state.log_history if "reward" in row]
    assert len(logged) == 2
    # The env's get_reward is TRL's reward column, named after the env class.
    assert all("rewards/Recorded/mean" in row for row in logged)
    # Every rollout reset its env to its row's task: GRPO groups of 2 share a task.
    assert len(played) >= 8 and set(played) <= {row["task_id"] for row in rows}
    assert all(played[i] == played[i + 1] for i in range(0, 8, 2))
