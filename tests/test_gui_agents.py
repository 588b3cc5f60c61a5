"""Agents see the GUI env's screenshots: the openai agent sends them as image content parts."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import gymnasium as gym
import pytest
from fake_openai import chat_body, fake_openai_server
from PIL import Image

import rounds  # noqa: F401  (registers the envs)
from rounds.agents import EpisodeSpec, make_agent, run_episodes
from rounds.agents.openai_agent import OpenAIAgent, with_images

TASK = "settings.wifi-train-0"


def images_in(message: dict[str, Any]) -> list[bytes]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    found = []
    for part in content:
        if part.get("type") == "image_url":
            url = part["image_url"]["url"]
            assert url.startswith("data:image/png;base64,")
            found.append(base64.b64decode(url.split(",", 1)[1]))
    return found


def play(agent: OpenAIAgent, observation: str) -> Any:
    def make() -> gym.Env[str, str]:
        return gym.make("rounds/GUI-v0", observation=observation, max_turns=4)

    spec = EpisodeSpec(task_id=TASK, seed=0)
    return next(iter(run_episodes(make, agent, [spec], env_id="rounds/GUI-v0")))


def test_openai_agent_sends_the_screenshot_of_each_turn_as_an_image_part() -> None:
    replies = iter(["click(2)", "scroll(down)", "finish()"])

    def handler(path: str, payload: dict[str, Any]) -> tuple[int, object, dict[str, str]]:
        return 200, chat_body(next(replies)), {}

    with fake_openai_server(handler) as (base_url, received):
        agent = OpenAIAgent("vision-model", base_url=base_url, backoff_s=0.01)
        rollout = play(agent, "screenshot")
    assert rollout.episode.num_turns == 3 and len(received) == 3
    reference = gym.make("rounds/GUI-v0", observation="screenshot").unwrapped
    _, info = reference.reset(options={"task_id": TASK})
    first_request = received[0][1]["messages"]
    sent = images_in(first_request[-1])
    assert sent == [info["screenshot"]]
    assert Image.open(io.BytesIO(sent[0])).size == (360, 640)
    assert first_request[-1]["content"][0]["type"] == "text"
    assert "Screen: Home" in first_request[-1]["content"][0]["text"]
    # Later requests carry the newest screenshot only (max_images=1), on the newest observation.
    second_request = received[1][1]["messages"]
    assert [bool(images_in(m)) for m in second_request] == [False] * (len(second_request) - 1) + [
        True
    ]
    _, _, _, _, after_click = reference.step("click(2)")
    assert images_in(second_request[-1]) == [after_click["screenshot"]]
    # The recorded episode keeps text only: bytes never reach episodes.jsonl.
    json.dumps(rollout.episode.model_dump(mode="json"))
    assert all("screenshot" not in turn.info for turn in rollout.episode.turns)


def test_no_image_parts_without_screenshots() -> None:
    def handler(path: str, payload: dict[str, Any]) -> tuple[int, object, dict[str, str]]:
        return 200, chat_body("finish()"), {}

    with fake_openai_server(handler) as (base_url, received):
        agent = OpenAIAgent("text-model", base_url=base_url)
        play(agent, "a11y")
    messages = received[0][1]["messages"]
    assert all(isinstance(m["content"], str) for m in messages)
    assert "[2] listitem" in messages[-1]["content"]


def test_tool_results_get_their_image_in_a_following_user_message() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "second"},
    ]
    shots = {1: b"\x89PNG-one", 3: b"\x89PNG-two"}
    out = with_images(messages, shots, max_images=2)
    assert images_in(out[1]) == [b"\x89PNG-one"]
    assert out[3] == messages[3] and out[4]["role"] == "user"
    assert images_in(out[4]) == [b"\x89PNG-two"]
    assert len(with_images(messages, shots, max_images=0)) == len(messages)
    only_latest = with_images(messages, shots, max_images=1)
    assert not images_in(only_latest[1]) and images_in(only_latest[4])


def test_openai_agent_uses_the_gui_tools_and_the_env_parses_the_call() -> None:
    def handler(path: str, payload: dict[str, Any]) -> tuple[int, object, dict[str, str]]:
        assert {t["function"]["name"] for t in payload["tools"]} == {
            "click",
            "type",
            "scroll",
            "back",
            "finish",
        }
        call = {
            "id": "c1",
            "type": "function",
            "function": {"name": "finish", "arguments": "{}"},
        }
        return 200, chat_body(None, [call]), {}

    with fake_openai_server(handler) as (base_url, _):
        env = gym.make("rounds/GUI-v0").unwrapped
        agent = make_agent("openai", env, model="m", base_url=base_url)  # type: ignore[arg-type]
        rollout = play(agent, "both")  # type: ignore[arg-type]
    assert rollout.episode.num_turns == 1 and not rollout.episode.truncated
    assert rollout.episode.turns[0].info["invalid_action"] is False


def test_recorded_episodes_keep_screenshot_hashes_and_the_screens_can_be_rebuilt() -> None:
    from rounds.agents.scripted import ScriptedAgent
    from rounds.envs.gui.screenshots import ScreenshotMismatch, episode_screenshots
    from rounds.records import Episode

    specs = [EpisodeSpec(task_id=f"files.rename-validation-{i}", seed=i) for i in range(3)]
    rollouts = list(
        run_episodes(
            lambda: gym.make("rounds/GUI-v0", observation="both"),
            ScriptedAgent("expert"),
            specs,
            env_id="rounds/GUI-v0",
        )
    )
    for rollout in rollouts:
        episode = Episode.model_validate_json(rollout.episode.model_dump_json())
        assert "screenshot" not in episode.meta["reset_info"]
        assert all(len(turn.info["screenshot_sha256"]) == 64 for turn in episode.turns)
        images = episode_screenshots(episode)
        assert len(images) == len(episode.turns) + 1
        assert all(Image.open(io.BytesIO(png)).size == (360, 640) for png in images)
        episode.turns[1].info["screenshot_sha256"] = "0" * 64
        with pytest.raises(ScreenshotMismatch, match="turn 1"):
            episode_screenshots(episode)


# ------------------------------------------------------------------ hf agent, vision-language


@pytest.fixture(scope="module")
def vl_agent() -> Any:
    from rounds.agents.hf import HFAgent

    return HFAgent("tiny-vl", max_new_tokens=6, seed=0)


def test_tiny_vl_is_a_small_qwen2_vl_with_an_image_processor(vl_agent: Any) -> None:
    from rounds.models import resolve_model, tiny_vl

    assert type(vl_agent.lm).__name__ == "Qwen2VLForConditionalGeneration"
    assert sum(p.numel() for p in vl_agent.lm.parameters()) < 1_000_000
    assert vl_agent.image_processor is not None
    assert resolve_model("tiny-vl") == str(tiny_vl())  # built once, then reused


def test_hf_agent_shows_each_screenshot_to_a_vision_language_model(vl_agent: Any) -> None:
    import torch

    calls: list[dict[str, Any]] = []
    generate = vl_agent.lm.generate

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return generate(**kwargs)

    vl_agent.lm.generate = spy
    try:
        env = gym.make("rounds/GUI-v0", observation="screenshot", max_turns=3)
        rollout = next(
            iter(
                run_episodes(
                    lambda: env, vl_agent, [EpisodeSpec(task_id=TASK)], env_id="rounds/GUI-v0"
                )
            )
        )
    finally:
        del vl_agent.lm.generate
    turns = rollout.episode.num_turns
    assert turns == len(calls) >= 2
    pad = vl_agent.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = vl_agent.image_processor.merge_size**2
    screens = screens_seen(rollout.episode)  # turn t's generation gets every screen so far
    for t, call in enumerate(calls):
        grids = call["image_grid_thw"]
        assert grids.shape == (t + 1, 3)
        expected = vl_agent.image_processor(
            images=[Image.open(io.BytesIO(png)).convert("RGB") for png in screens[: t + 1]],
            return_tensors="pt",
        )
        torch.testing.assert_close(call["pixel_values"], expected["pixel_values"])
        image_tokens = int((call["input_ids"] == pad).sum())
        assert image_tokens == int(grids.prod(dim=1).sum()) // merge > 0
    # The recorded tokens are one sequence with the image tokens in the prompt deltas, and
    # the recorded log-probs are those of that sequence with the pixel values.
    sequence: list[int] = []
    sampled_at: list[tuple[int, float]] = []
    for action in rollout.actions:
        assert action.prompt_ids and action.token_ids and action.sampled_mask and action.logprobs
        sequence += action.prompt_ids
        for token, mask, logprob in zip(
            action.token_ids, action.sampled_mask, action.logprobs, strict=True
        ):
            if mask:
                sampled_at.append((len(sequence), logprob))
            sequence.append(token)
    assert calls[-1]["input_ids"][0].tolist() == sequence[: calls[-1]["input_ids"].shape[1]]
    assert sequence.count(pad) == image_tokens
    with torch.no_grad():
        ids = torch.tensor([sequence])
        logits = vl_agent.lm(
            input_ids=ids,
            pixel_values=calls[-1]["pixel_values"],
            image_grid_thw=calls[-1]["image_grid_thw"],
            mm_token_type_ids=(ids == pad).int(),
        ).logits[0]
        blank = vl_agent.lm(
            input_ids=ids,
            pixel_values=torch.zeros_like(calls[-1]["pixel_values"]),
            image_grid_thw=calls[-1]["image_grid_thw"],
            mm_token_type_ids=(ids == pad).int(),
        ).logits[0]
    logprobs = torch.log_softmax(logits.float(), -1)
    for position, recorded in sampled_at:
        assert abs(float(logprobs[position - 1, sequence[position]]) - recorded) < 2e-4
    assert not torch.allclose(logits, blank, atol=1e-4)  # the pixels do reach the model


def test_the_trainer_refuses_a_vision_language_model() -> None:
    from rounds.models import load_causal_lm

    with pytest.raises(ValueError, match=r"vision-language model.*Evaluate it with the hf agent"):
        load_causal_lm("tiny-vl")


def screens_seen(episode: Any) -> list[bytes]:
    """The screenshots the agent saw before each turn, rebuilt from the recorded actions."""
    env = gym.make("rounds/GUI-v0", observation="screenshot").unwrapped
    _, info = env.reset(options={"task_id": episode.task_id})
    screens = [info["screenshot"]]
    for turn in episode.turns[:-1]:
        screens.append(env.step(turn.action)[4]["screenshot"])
    return screens


def test_batched_vl_episodes_record_the_log_probs_of_their_own_sequence(vl_agent: Any) -> None:
    """Two episodes generated in one left-padded batch, each with its own images: each
    episode's recorded log-probs are those of its sequence alone, with its pixels."""
    import torch

    specs = [EpisodeSpec(task_id=TASK), EpisodeSpec(task_id="files.rename-validation-0")]
    rollouts = list(
        run_episodes(
            lambda: gym.make("rounds/GUI-v0", observation="screenshot", max_turns=2),
            vl_agent,
            specs,
            env_id="rounds/GUI-v0",
        )
    )
    pad = vl_agent.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert len(rollouts) == 2
    for rollout in rollouts:
        sequence: list[int] = []
        sampled_at: list[tuple[int, float]] = []
        for action in rollout.actions:
            assert action.prompt_ids and action.token_ids and action.sampled_mask
            assert action.logprobs
            sequence += action.prompt_ids
            for token, mask, logprob in zip(
                action.token_ids, action.sampled_mask, action.logprobs, strict=True
            ):
                if mask:
                    sampled_at.append((len(sequence), logprob))
                sequence.append(token)
        screens = screens_seen(rollout.episode)
        pixels = vl_agent.image_processor(
            images=[Image.open(io.BytesIO(png)).convert("RGB") for png in screens],
            return_tensors="pt",
        )
        ids = torch.tensor([sequence])
        with torch.no_grad():
            logits = vl_agent.lm(
                input_ids=ids,
                pixel_values=pixels["pixel_values"],
                image_grid_thw=pixels["image_grid_thw"],
                mm_token_type_ids=(ids == pad).int(),
            ).logits[0]
        logprobs = torch.log_softmax(logits.float(), -1)
        assert sampled_at
        for position, recorded in sampled_at:
            assert abs(float(logprobs[position - 1, sequence[position]]) - recorded) < 2e-4
