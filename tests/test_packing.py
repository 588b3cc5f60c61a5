"""Leaner updates: micro-batches grouped by length within a token budget, log-probs computed
for the trained tokens only, and no reference forward without a KL term. Each must leave the
loss and its gradients what the plain, unpacked full-vocabulary computation gives."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import toy_envs  # noqa: F401  (registers toys/Vowel-v0)
from conftest import TOY_TRAINING

import rounds.trainers.loss as loss_module
from rounds.trainers import GRPOConfig, GRPOTrainer
from rounds.trainers.loss import decoder_and_head, ppo_clip_loss, token_logprobs
from rounds.trainers.sequences import TrainSequence, collate, micro_batches


def make_trainer(tmp_path: Path, **settings: object) -> GRPOTrainer:
    config = {**TOY_TRAINING, "env_id": "toys/Vowel-v0", "steps": 1, "progress": False}
    return GRPOTrainer(
        config=GRPOConfig(**{**config, "output_dir": str(tmp_path / "run"), **settings})
    )


def episodes(vocab: int, *, seed: int = 0) -> list[TrainSequence]:
    """Multi-turn-shaped sequences of different lengths: prompt tokens (no loss) then replies
    (loss), some reply tokens masked, one episode with no trained token at all. Old log-probs
    and advantages are random, so ratios spread and some tokens clip."""
    generator = torch.Generator().manual_seed(seed)
    sequences = []
    for n, turns in enumerate([(9, 5), (20, 7, 6, 3), (4, 2), (13, 11, 8, 8), (30, 1), (6, 0)]):
        ids: list[int] = []
        mask: list[int] = []
        for t, length in enumerate(turns):
            ids += torch.randint(3, vocab, (length,), generator=generator).tolist()
            mask += [t % 2] * length  # even turns are observations, odd turns replies
        mask = [m if (n + i) % 5 else 0 for i, m in enumerate(mask)]  # a few masked replies
        count = len(ids)
        old = (-torch.rand(count, generator=generator) * 8).tolist()
        advantages = (torch.randn(count, generator=generator) * torch.tensor(mask)).tolist()
        turns_of = [0] * count
        sequences.append(TrainSequence(ids, mask, old, advantages, turns_of))
    return sequences


def full_logprobs(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every position's log-prob and entropy through the model's own forward: the plain
    computation the trainer's selective one must equal."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    log_probs = torch.log_softmax(logits[:, :-1].float() / temperature, dim=-1)
    chosen = log_probs.gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return chosen, -(log_probs.exp() * log_probs).sum(-1)


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    found = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return found


def test_micro_batches_group_by_length_within_the_token_budget() -> None:
    lengths = [5, 9, 3, 9, 4, 20]
    # Longest first; a micro-batch costs count x its longest; 20 exceeds the budget alone.
    assert micro_batches(lengths, max_sequences=3, max_tokens=20) == [[5], [1, 3], [0, 4, 2]]
    assert micro_batches(lengths, max_sequences=2, max_tokens=None) == [[5, 1], [3, 0], [4, 2]]
    assert micro_batches(lengths, max_sequences=8, max_tokens=1) == [[5], [1], [3], [0], [4], [2]]
    assert micro_batches([], max_sequences=4, max_tokens=64) == []
    spread = [int(v) for v in torch.randint(1, 300, (200,), generator=torch.Generator())]
    batches = micro_batches(spread, max_sequences=16, max_tokens=1024)
    assert sorted(i for b in batches for i in b) == list(range(200))
    for batch in batches:
        widths = [spread[i] for i in batch]
        assert len(batch) <= 16 and (len(batch) == 1 or len(batch) * max(widths) <= 1024)


@pytest.mark.parametrize("plain_head", [True, False])
def test_trained_token_logprobs_equal_the_full_computation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plain_head: bool
) -> None:
    trainer = make_trainer(tmp_path)
    model = trainer.policy
    if not plain_head:  # any other model goes through its own forward
        monkeypatch.setattr(loss_module, "PLAIN_HEAD_MODEL_TYPES", frozenset())
    assert (decoder_and_head(model) is not None) == plain_head
    sequences = episodes(model.config.vocab_size)
    batch = collate(sequences, pad_id=int(trainer.tokenizer.pad_token_id), device="cpu")
    targets = batch["targets"]
    head_rows: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda _m, inputs, _o: head_rows.append(inputs[0].reshape(-1, inputs[0].shape[-1]).shape[0])
    )
    try:
        chosen, entropy = token_logprobs(
            model, batch["input_ids"], batch["attention_mask"], targets, 0.7, entropy=True
        )
    finally:
        hook.remove()
    with torch.no_grad():
        full, full_entropy = full_logprobs(model, batch, 0.7)
    assert chosen.shape == (int(targets.sum()),)
    torch.testing.assert_close(chosen, full[targets[:, 1:]], rtol=1e-5, atol=1e-5)
    assert entropy is not None
    torch.testing.assert_close(entropy, full_entropy[targets[:, 1:]], rtol=1e-5, atol=1e-5)
    # The LM head saw only the trained tokens' positions (or, in the fallback, every one).
    width = batch["input_ids"].shape
    assert head_rows == [int(targets.sum())] if plain_head else [width[0] * width[1]]
    assert int(targets.sum()) < width[0] * width[1] // 2  # the selective head did save work


@pytest.mark.parametrize(
    ("kl_coef", "entropy_coef"), [(0.0, 0.0), (0.1, 0.01)], ids=["plain", "kl+entropy"]
)
def test_packed_micro_batches_give_the_unpacked_loss_and_gradients(
    tmp_path: Path, kl_coef: float, entropy_coef: float
) -> None:
    trainer = make_trainer(tmp_path, kl_coef=kl_coef, entropy_coef=entropy_coef, temperature=0.8)
    model, config = trainer.policy, trainer.config
    with torch.no_grad():  # move the policy off the reference so the KL term is not zero
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    sequences = episodes(model.config.vocab_size, seed=1)
    tokens = float(sum(sum(s.loss_mask) for s in sequences))
    pad = int(trainer.tokenizer.pad_token_id)

    # The plain computation: one padded batch of every episode, every position's logits.
    batch = collate(sequences, pad_id=pad, device="cpu")
    logprobs, entropy = full_logprobs(model, batch, config.temperature)
    reference = None
    if kl_coef:
        with torch.no_grad():
            reference, _ = full_logprobs(trainer.reference, batch, config.temperature)
    expected, _ = ppo_clip_loss(
        logprobs,
        batch["old_logprobs"][:, 1:],
        batch["advantages"][:, 1:],
        batch["loss_mask"][:, 1:],
        clip_low=config.clip_low,
        clip_high=config.clip_high,
        normalizer=tokens,
        ref_logprobs=reference,
        kl_coef=kl_coef,
        entropy=entropy,
        entropy_coef=entropy_coef,
    )
    torch.autograd.backward(expected)
    expected_grads = gradients(model)

    lengths = [len(s.input_ids) for s in sequences]
    packed = micro_batches(lengths, max_sequences=4, max_tokens=2 * max(lengths))
    assert 1 < len(packed) < len(sequences)  # a real grouping, neither one batch nor singles
    for grouping in ([[i] for i in range(len(sequences))], packed):
        finite, loss, sums = trainer.accumulate_gradients(sequences, grouping, tokens)
        assert finite
        assert loss == pytest.approx(float(expected.detach()), rel=1e-5, abs=1e-7)
        assert sums["kl"] > 0 if kl_coef else sums["kl"] == 0
        grads = gradients(model)
        assert grads.keys() == expected_grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-7)


def test_no_reference_forward_without_kl_and_the_loss_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = make_trainer(tmp_path, kl_coef=0.0)
    assert trainer.reference is None  # no frozen copy is even built
    sequences = episodes(trainer.policy.config.vocab_size, seed=2)
    tokens = float(sum(sum(s.loss_mask) for s in sequences))
    batches = micro_batches([len(s.input_ids) for s in sequences], max_sequences=2, max_tokens=None)

    def no_reference(batch: object) -> object:
        raise AssertionError("the reference forward ran with kl_coef = 0")

    monkeypatch.setattr(trainer, "_reference_logprobs", no_reference)
    calls: list[int] = []
    decoder = trainer.policy.get_decoder()
    hook = decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        finite, loss, _ = trainer.accumulate_gradients(sequences, batches, tokens)
    finally:
        hook.remove()
    trainer.policy.zero_grad(set_to_none=True)
    assert finite and len(calls) == len(batches)  # one policy forward per micro-batch, no more

    # Computing a (different) reference and weighting it by 0 gives the same loss.
    reference = copy.deepcopy(trainer.policy)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    pad = int(trainer.tokenizer.pad_token_id)
    with_reference = 0.0
    for indices in batches:
        batch = collate([sequences[i] for i in indices], pad_id=pad, device="cpu")
        targets = batch["targets"]
        args = (batch["input_ids"], batch["attention_mask"], targets, trainer.config.temperature)
        with torch.no_grad():
            logprobs, entropy = token_logprobs(trainer.policy, *args, entropy=True)
            ref, _ = token_logprobs(reference, *args)
            value, stats = ppo_clip_loss(
                logprobs,
                batch["old_logprobs"][targets],
                batch["advantages"][targets],
                batch["loss_mask"][targets],
                clip_low=trainer.config.clip_low,
                clip_high=trainer.config.clip_high,
                normalizer=tokens,
                ref_logprobs=ref,
                kl_coef=0.0,
                entropy=entropy,
            )
        assert stats.kl > 0
        with_reference += float(value)
    assert loss == pytest.approx(with_reference, rel=1e-6)


def test_a_training_step_with_a_small_token_budget_trains_every_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An entropy bonus gives a gradient even when every group's rewards tie.
    trainer = make_trainer(tmp_path, micro_batch_tokens=64, micro_batch_size=32, entropy_coef=0.01)
    widths: list[tuple[int, ...]] = []
    original = trainer._micro_batch_loss

    def recording(batch: dict[str, torch.Tensor], tokens: float) -> tuple[Any, Any]:
        widths.append(tuple(batch["input_ids"].shape))
        return original(batch, tokens)

    monkeypatch.setattr(trainer, "_micro_batch_loss", recording)
    before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    metrics = trainer.train_step(0)
    episodes_run = TOY_TRAINING["tasks_per_step"] * TOY_TRAINING["group_size"]
    assert sum(r for r, _ in widths) == episodes_run - metrics["untrainable_episodes"]
    assert len(widths) > 1 and all(r == 1 or r * w <= 64 for r, w in widths)
    assert metrics["tokens_trained"] > 0 and metrics["grad_norm"] > 0
    after = trainer.policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_right_padding_runs_without_a_mask_and_left_padding_keeps_it(tmp_path: Path) -> None:
    """A right-padded batch needs no attention mask in a causal LM (no real token sees a
    later position), so the causal kernel runs; a left-padded one keeps its mask. Both give
    the log-probs each sequence has alone."""
    trainer = make_trainer(tmp_path)
    model = trainer.policy
    sequences = episodes(model.config.vocab_size)[:4]
    pad = int(trainer.tokenizer.pad_token_id)
    right = collate(sequences, pad_id=pad, device="cpu")
    width = right["input_ids"].shape[1]
    left = {
        key: torch.stack(
            [
                torch.roll(row, width - len(s.input_ids))
                for row, s in zip(value, sequences, strict=True)
            ]
        )
        for key, value in right.items()
        if key in ("input_ids", "attention_mask", "targets")
    }
    masks: list[Any] = []
    decoder = model.get_decoder()
    hook = decoder.register_forward_pre_hook(
        lambda _m, _a, kwargs: masks.append(kwargs.get("attention_mask")), with_kwargs=True
    )
    try:
        with torch.no_grad():
            right_values, _ = token_logprobs(
                model, right["input_ids"], right["attention_mask"], right["targets"], 1.0
            )
            left_values, _ = token_logprobs(
                model, left["input_ids"], left["attention_mask"], left["targets"], 1.0
            )
    finally:
        hook.remove()
    assert masks[0] is None and masks[1] is not None
    alone = []
    with torch.no_grad():
        for s in sequences:
            one = collate([s], pad_id=pad, device="cpu")
            values, _ = token_logprobs(
                model, one["input_ids"], one["attention_mask"], one["targets"], 1.0
            )
            alone.append(values)
    expected = torch.cat(alone)
    torch.testing.assert_close(right_values, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(left_values, expected, rtol=1e-5, atol=1e-5)


def test_the_warm_start_loss_is_the_reply_tokens_mean_nll(tmp_path: Path) -> None:
    """Cloning computes only the reply tokens' log-probs (the LM head at their positions);
    its loss is still the mean negative log-likelihood of every reply token."""
    from rounds.trainers.warm_start import ClonedSequence, clone

    trainer = make_trainer(tmp_path)
    model = trainer.policy
    pad = int(trainer.tokenizer.pad_token_id)
    sequences = [
        ClonedSequence(s.input_ids, [int(m > 0) for m in s.loss_mask])
        for s in episodes(model.config.vocab_size)[:4]
    ]
    batch = collate(
        [
            TrainSequence(
                s.input_ids,
                s.loss_mask,
                [0.0] * len(s.input_ids),
                [0.0] * len(s.input_ids),
                [0] * len(s.input_ids),
            )
            for s in sequences
        ],
        pad_id=pad,
        device="cpu",
    )
    with torch.no_grad():
        full, _ = full_logprobs(model, batch, 1.0)
    replies = batch["targets"][:, 1:]
    expected = -float(full[replies].mean())
    (loss,) = clone(
        model,
        sequences,
        epochs=1,
        learning_rate=1e-3,
        micro_batch_size=4,
        pad_id=pad,
        device="cpu",
        seed=0,
    )
    assert loss == pytest.approx(expected, rel=1e-5)


def grouped_episodes(vocab: int, *, seed: int = 0) -> list[TrainSequence]:
    """GRPO-shaped sequences: three prompts, each opening several episodes whose replies
    (and, in some, a later observation and reply) differ in content and length."""
    generator = torch.Generator().manual_seed(seed)
    sequences = []
    for prompt_length, group in ((11, 4), (7, 3), (15, 2)):
        prompt = torch.randint(3, vocab, (prompt_length,), generator=generator).tolist()
        for member in range(group):
            turns = [(5 + member, 1)] + ([(3, 0), (4 + member, 1)] if member % 2 else [])
            ids, mask = list(prompt), [0] * prompt_length
            for length, trained in turns:
                ids += torch.randint(3, vocab, (length,), generator=generator).tolist()
                mask += [trained] * length
            count = len(ids)
            old = (-torch.rand(count, generator=generator) * 8).tolist()
            advantages = (torch.randn(count, generator=generator) * torch.tensor(mask)).tolist()
            sequences.append(TrainSequence(ids, mask, old, advantages, [0] * count))
    return sequences


def test_shared_prompts_run_once_with_the_same_values_and_gradients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = make_trainer(tmp_path)
    model = trainer.policy
    decoder, _ = decoder_and_head(model) or (None, None)
    sequences = grouped_episodes(model.config.vocab_size)
    batch = collate(sequences, pad_id=int(trainer.tokenizer.pad_token_id), device="cpu")
    targets = batch["targets"]
    rows_run: list[tuple[int, int]] = []
    hook = decoder.register_forward_pre_hook(
        lambda _m, args, kwargs: rows_run.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )

    def objective() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        chosen, _ = token_logprobs(
            model, batch["input_ids"], batch["attention_mask"], targets, 0.7, entropy=True
        )
        (chosen * torch.linspace(-1, 1, chosen.shape[0])).sum().backward()
        return chosen.detach(), gradients(model)

    try:
        shared, shared_grads = objective()
        assert [r for r, _ in rows_run] == [3, 9]  # three distinct prompts, then nine rows
        assert rows_run[1][1] < batch["input_ids"].shape[1]  # the rows ran without them
        monkeypatch.setattr(loss_module, "shared_prefix_hidden", lambda *args: None)
        rows_run.clear()
        whole, whole_grads = objective()
        assert [r for r, _ in rows_run] == [9]
    finally:
        hook.remove()
    torch.testing.assert_close(shared, whole, rtol=1e-5, atol=1e-5)
    assert shared_grads.keys() == whole_grads.keys()
    for name, grad in whole_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_rows_that_share_no_prompt_run_whole(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path)
    decoder, _ = decoder_and_head(trainer.policy) or (None, None)
    batch = collate(
        episodes(trainer.policy.config.vocab_size)[:5],  # all prompts differ
        pad_id=int(trainer.tokenizer.pad_token_id),
        device="cpu",
    )
    assert (
        loss_module.shared_prefix_hidden(
            decoder, batch["input_ids"], batch["attention_mask"], batch["targets"]
        )
        is None
    )
