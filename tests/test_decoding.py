"""The lean decoding loop (rounds.models.decoding) samples what ``generate`` would.

Greedy decoding is compared with ``generate`` token for token over a left-padded batch;
sampling is compared with the distribution it draws from (frequencies, top-k, top-p,
entries of weight 0); stops, seeds and the returned cache are checked on their own.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from rounds.models import load_model_and_tokenizer
from rounds.models.caches import ReservedLayer
from rounds.models.decoding import SamplingSettings, decode, draw


@pytest.fixture(scope="module")
def tiny_lm() -> tuple[Any, Any]:
    lm, tokenizer = load_model_and_tokenizer("tiny")
    lm.eval()
    return lm, tokenizer


def left_padded(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(3, 800, (len(lengths), width), generator=generator)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, width - length :] = 1
        ids[row, : width - length] = 0
    return ids, mask


def run(
    lm: Any, ids: torch.Tensor, mask: torch.Tensor, generator: Any = None, **kwargs: Any
) -> Any:
    settings = SamplingSettings(
        **({"max_new_tokens": 10, "temperature": 0.0, "stop_ids": (10**6,)} | kwargs)
    )
    generator = generator or torch.Generator().manual_seed(0)
    with torch.no_grad():
        return decode(lm, ids, mask, settings, generator=generator)


def test_greedy_decoding_equals_generate_token_for_token(tiny_lm: tuple[Any, Any]) -> None:
    lm, _ = tiny_lm
    ids, mask = left_padded([9, 23, 16, 4])
    with torch.no_grad():
        out = lm.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=10,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=[10**6],
            return_dict_in_generate=True,
            output_logits=True,
        )
    expected = out.sequences[:, ids.shape[1] :]
    logprobs = torch.stack(
        [
            torch.log_softmax(step.float(), -1).gather(1, expected[:, t : t + 1])[:, 0]
            for t, step in enumerate(out.logits)
        ],
        dim=1,
    )
    drawn = run(lm, ids, mask)
    assert torch.equal(drawn.tokens, expected)
    assert torch.allclose(drawn.logprobs, logprobs, atol=1e-5)


def test_stopped_rows_are_padded_and_the_loop_ends_when_all_stop(
    tiny_lm: tuple[Any, Any],
) -> None:
    lm, _ = tiny_lm
    ids, mask = left_padded([9, 23, 16, 4])
    free = run(lm, ids, mask)
    stop = int(free.tokens[1, 2])  # row 1 stops at step 2; other rows at its first use
    drawn = run(lm, ids, mask, stop_ids=(stop,), pad_id=7)
    for row in range(4):
        sampled = free.tokens[row].tolist()
        end = sampled.index(stop) + 1 if stop in sampled else len(sampled)
        assert drawn.tokens[row, :end].tolist() == sampled[:end]
        assert (drawn.tokens[row, end:] == 7).all()
        assert (drawn.logprobs[row, end:] == 0).all()
        assert (drawn.logprobs[row, :end] < 0).all()
    ends = [row.index(stop) + 1 if stop in row else 10**6 for row in free.tokens.tolist()]
    assert drawn.tokens.shape[1] == min(10, max(ends))


def test_the_cache_holds_every_token_but_the_last_with_room_reserved(
    tiny_lm: tuple[Any, Any],
) -> None:
    lm, _ = tiny_lm
    ids, mask = left_padded([5, 12])
    drawn = run(lm, ids, mask, max_new_tokens=6)
    assert drawn.tokens.shape == (2, 6)
    layers = drawn.cache.layers
    assert all(type(layer) is ReservedLayer for layer in layers)
    assert all(layer.get_seq_length() == ids.shape[1] + 5 for layer in layers)
    # Continuing from the cache (the last token fed) gives the logits of a full forward.
    sequence = torch.cat([ids, drawn.tokens], dim=1)
    full_mask = torch.cat([mask, torch.ones(2, 6, dtype=torch.long)], dim=1)
    positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        stepped = lm(
            input_ids=drawn.tokens[:, -1:],
            attention_mask=full_mask,
            position_ids=positions[:, -1:],
            cache=drawn.cache,
        ).logits[:, -1]
        whole = lm(input_ids=sequence, attention_mask=full_mask, position_ids=positions).logits
    assert torch.allclose(stepped, whole[:, -1], atol=1e-4)


def test_a_plain_layer_is_given_room_without_changing_what_it_holds() -> None:
    layer = DynamicLayer()
    keys = torch.randn(2, 1, 3, 4)
    layer.update(keys, keys * 2)
    reserved = ReservedLayer.around(layer, room=5)
    assert torch.equal(reserved.keys, keys) and torch.equal(reserved.values, keys * 2)
    out, _ = reserved.update(torch.ones(2, 1, 1, 4), torch.ones(2, 1, 1, 4))
    assert out.shape[2] == 4 and reserved._keys.shape[2] == 8  # written in place


def test_seeds_repeat_and_differ(tiny_lm: tuple[Any, Any]) -> None:
    lm, _ = tiny_lm
    ids, mask = left_padded([9, 23, 16, 4])

    def sampled(seed: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(seed)
        tokens: list[list[int]] = run(
            lm, ids, mask, temperature=1.0, generator=generator
        ).tokens.tolist()
        return tokens

    assert sampled(1) == sampled(1)
    assert sampled(1) != sampled(2)


def test_draws_follow_the_tempered_distribution() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -30.0, float("-inf")]]).repeat(20_000, 1)
    generator = torch.Generator().manual_seed(0)
    tokens, logprobs = draw(logits, 0.7, 0, 1.0, generator)
    expected = torch.softmax(logits[0] / 0.7, -1)
    counts = torch.bincount(tokens, minlength=6).float() / len(tokens)
    assert torch.allclose(counts, expected, atol=0.01)  # about 3 standard errors
    assert counts[5] == 0  # weight 0: never drawn
    assert torch.allclose(logprobs, torch.log(expected)[tokens])


def test_top_k_and_top_p_narrow_the_draw_but_not_the_recorded_logprob() -> None:
    logits = torch.tensor([[3.0, 2.5, 2.0, 0.0, -1.0]]).repeat(4_000, 1)
    generator = torch.Generator().manual_seed(0)
    tokens, logprobs = draw(logits, 1.0, 2, 1.0, generator)
    assert set(tokens.tolist()) == {0, 1}
    tempered = torch.log_softmax(logits[0], -1)
    assert torch.allclose(logprobs, tempered[tokens])  # the trainer's distribution
    probs = torch.softmax(logits[0], -1)  # 0.48, 0.29, 0.18, ...: top-p 0.7 keeps 0 and 1
    tokens, _ = draw(logits, 1.0, 0, 0.7, generator)
    assert set(tokens.tolist()) == {0, 1} and probs[:2].sum() > 0.7 > probs[0]
    share = (tokens == 0).float().mean()
    assert abs(share - probs[0] / probs[:2].sum()) < 0.03


def test_greedy_picks_the_arg_max() -> None:
    logits = torch.tensor([[0.1, 3.0, 2.9], [5.0, -1.0, 4.0]])
    tokens, logprobs = draw(logits, 0.0, 0, 1.0, torch.Generator())
    assert tokens.tolist() == [1, 0]
    assert torch.allclose(logprobs, torch.log_softmax(logits, -1).gather(1, tokens[:, None])[:, 0])


def test_the_prepared_step_mask_is_the_model_s_own_and_changes_nothing(
    tiny_lm: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rounds.models import decoding

    lm, _ = tiny_lm
    ids, mask = left_padded([9, 23, 16, 4])
    used: list[bool] = []
    prepare = decoding._prepared_mask

    def spy(*args: Any) -> Any:
        prepared = prepare(*args)
        used.append(prepared is not None)
        return prepared

    monkeypatch.setattr(decoding, "_prepared_mask", spy)
    with_prepared = run(lm, ids, mask, temperature=1.0)
    assert used == [True]  # padded rows under SDPA: the model's mask is a boolean one
    monkeypatch.setattr(decoding, "_prepared_mask", lambda *args: None)
    with_2d = run(lm, ids, mask, temperature=1.0)
    assert torch.equal(with_prepared.tokens, with_2d.tokens)
    assert torch.allclose(with_prepared.logprobs, with_2d.logprobs, atol=1e-6)


def test_repeated_prompts_are_prefilled_once(
    tiny_lm: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rounds.models import decoding

    lm, _ = tiny_lm
    distinct, distinct_mask = left_padded([9, 23, 16])
    order = torch.tensor([2, 0, 0, 1, 2, 2, 1, 0])  # a group's copies, interleaved
    ids, mask = distinct[order], distinct_mask[order]
    batches: list[int] = []
    forward = lm.forward

    @functools.wraps(forward)
    def spy(*args: Any, **kwargs: Any) -> Any:
        batches.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    monkeypatch.setattr(lm, "forward", spy)
    shared = run(lm, ids, mask, temperature=1.0)
    assert batches[0] == 3 and set(batches[1:]) == {8}  # one prefill row per prompt
    monkeypatch.setattr(decoding, "_distinct_rows", lambda *args: (None, None))
    batches.clear()
    each = run(lm, ids, mask, temperature=1.0)
    assert batches[0] == 8
    assert torch.equal(shared.tokens, each.tokens)
    assert torch.allclose(shared.logprobs, each.logprobs, atol=1e-5)
    assert len({tuple(row) for row in shared.tokens.tolist()}) > 3  # the copies sample apart


def test_a_deferred_stop_check_only_adds_padding(
    tiny_lm: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On accelerators the loop checks for an all-stopped batch every few steps (no wait on
    the device each step): the steps it runs past the last stop sample only padding."""
    from rounds.models import decoding

    lm, _ = tiny_lm
    ids, mask = left_padded([9, 23, 16, 4])
    free = run(lm, ids, mask, temperature=1.0)
    stops = tuple(int(free.tokens[row, at]) for row, at in enumerate((1, 4, 2, 3)))
    every_step = run(lm, ids, mask, temperature=1.0, stop_ids=stops, pad_id=7)
    steps = every_step.tokens.shape[1]
    assert steps <= 5  # every row stopped by then
    monkeypatch.setattr(decoding, "_stop_check_interval", lambda device: 3)
    deferred = run(lm, ids, mask, temperature=1.0, stop_ids=stops, pad_id=7)
    assert deferred.tokens.shape[1] == -(-steps // 3) * 3 > steps or steps % 3 == 0
    assert torch.equal(deferred.tokens[:, :steps], every_step.tokens)
    assert (deferred.tokens[:, steps:] == 7).all() and (deferred.logprobs[:, steps:] == 0).all()


def test_a_draw_never_lands_on_an_entry_of_weight_zero() -> None:
    """Even where the cumulative weights are not flat over a cut entry (as a GPU's parallel
    prefix sum may round them), the draw falls back to the likeliest entry."""
    logits = torch.tensor([[1.0, 0.5, 0.2, 0.1]]).repeat(5_000, 1)
    generator = torch.Generator().manual_seed(0)
    real_cumsum = torch.Tensor.cumsum

    def rounded_up(self: torch.Tensor, dim: int) -> torch.Tensor:
        out = real_cumsum(self, dim)
        return out + (self == 0).float() * 1e-3  # cut entries get a sliver of mass

    original = torch.Tensor.cumsum
    torch.Tensor.cumsum = rounded_up  # type: ignore[method-assign]
    try:
        tokens, _ = draw(logits, 1.0, 2, 1.0, generator)
    finally:
        torch.Tensor.cumsum = original  # type: ignore[method-assign]
    assert set(tokens.tolist()) <= {0, 1}
