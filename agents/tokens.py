"""One token sequence per episode, built as the conversation grows.

A local-model agent must train on exactly the tokens it sampled. Re-rendering
the whole conversation through the chat template each turn and tokenizing the
text again can split the earlier replies into different tokens (re-tokenisation
drift) and costs time quadratic in the conversation's length. Instead,
:class:`ConversationTokens` keeps the sampled tokens as they are and tokenizes
only what the template adds for each new observation: the rendering of the new
messages after a fixed dummy exchange, minus the rendering of that exchange.

With an image processor (a vision-language model), an observation that came with
a screenshot (``info["screenshot"]``) is rendered with an image part; the
template's single image placeholder is expanded to one token per merged image
patch, as the model expects, and the image's pixel values are kept in order
beside the token sequence (:attr:`ConversationTokens.images`), to be passed to
every generation of the episode.
"""

from __future__ import annotations

import io
from typing import Any

from rounds.agents.base import Action, Chat
from rounds.agents.chat import fit_messages, tool_calls_in_text
from rounds.agents.openai_agent import with_images

_DUMMY = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
_MARK = "\u2063MARK\u2063"


class ConversationTokens:
    """Incremental token sequences for chats, with a tokenizer's chat template.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template.
        use_tools: pass the env's tool specs to the template (when it renders tools).
        max_context_tokens: the model's context; a longer conversation is rebuilt from
            messages with the oldest observations cut (marked ``context_reset``), without
            their images.
        image_processor: a Qwen2-VL-style image processor (``image_grid_thw`` and
            ``merge_size``); without one, screenshots are not shown to the model.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        use_tools: bool = True,
        max_context_tokens: int = 32_768,
        image_processor: Any = None,
    ) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "the tokenizer has no chat template; rounds needs one to build conversations"
            )
        self.tokenizer = tokenizer
        self.use_tools = use_tools and "tools" in str(tokenizer.chat_template)
        self.max_context_tokens = max_context_tokens
        self.image_processor = image_processor
        self.image_token = str(getattr(tokenizer, "image_token", None) or "<|image_pad|>")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        if image_processor is not None and self.image_token_id in (None, tokenizer.unk_token_id):
            raise ValueError(
                f"the tokenizer has no {self.image_token} token, so it cannot take images; "
                "load a vision-language model's own tokenizer"
            )
        self.eos_id = int(tokenizer.eos_token_id)
        #: Tokens that end a reply as sampled (the model's end-of-turn and end-of-text tokens).
        self.stop_ids: set[int] = {self.eos_id}
        eos_text = tokenizer.convert_ids_to_tokens(self.eos_id)
        rendered = self._render(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": _MARK}], None, False
        )
        tail = rendered.split(_MARK, 1)[1] if _MARK in rendered else ""
        # What the template writes after the end-of-turn token (e.g. "\n"), which sampling stops before.
        self.after_eos = tail[len(eos_text) :] if tail.startswith(eos_text) else ""

    def _render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, generation: bool
    ) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                messages, tools=tools, tokenize=False, add_generation_prompt=generation
            )
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _tools(self, chat: Chat) -> list[dict[str, Any]] | None:
        return chat.tools if self.use_tools and chat.tools else None

    def _with_images(self, chat: Chat, start: int) -> tuple[list[dict[str, Any]], list[bytes]]:
        """The messages from ``start`` on, those with a screenshot as image parts (with an
        image processor), and the screenshots in the order the template renders them."""
        new = chat.messages[start:]
        shots: dict[int, bytes] = chat.state.get("screenshots", {})
        if self.image_processor is None or not shots:
            return new, []
        mine = {i - start: png for i, png in shots.items() if start <= i < len(chat.messages)}
        return with_images(new, mine, len(mine)), [mine[i] for i in sorted(mine)]

    def _encode_with_images(
        self, text: str, pngs: list[bytes]
    ) -> tuple[list[int], tuple[Any, Any] | None]:
        """Tokens of ``text`` with each image placeholder expanded for its image, and the
        images' pixel values and ``image_grid_thw`` (``None`` without images)."""
        if not pngs:
            return self.encode(text), None
        import torch
        from PIL import Image

        pieces = text.split(self.image_token)
        if len(pieces) != len(pngs) + 1:
            raise ValueError(
                f"the chat template wrote {len(pieces) - 1} image placeholders for {len(pngs)} "
                "images; it does not render image parts as this model expects"
            )
        images = [Image.open(io.BytesIO(png)).convert("RGB") for png in pngs]
        batch = self.image_processor(images=images, return_tensors="pt")
        grids = batch["image_grid_thw"]
        merge = int(getattr(self.image_processor, "merge_size", 1)) ** 2
        counts = [int(torch.prod(grid)) // merge for grid in grids]
        expanded = pieces[0] + "".join(
            self.image_token * count + piece
            for count, piece in zip(counts, pieces[1:], strict=True)
        )
        return self.encode(expanded), (batch["pixel_values"], grids)

    def prompt(self, chat: Chat, max_new_tokens: int) -> tuple[list[int], list[int], bool]:
        """The context to generate from, the tokens it added this turn, and whether it was rebuilt."""
        state = chat.state
        tools = self._tools(chat)
        if "ids" not in state:
            messages, pngs = self._with_images(chat, 0)
            delta, added = self._encode_with_images(self._render(messages, tools, True), pngs)
            ids = delta
        else:
            new, pngs = self._with_images(chat, state["next"])
            before = self._render(_DUMMY, tools, False)
            after = self._render(_DUMMY + new, tools, True)
            text = (
                after[len(before) :] if after.startswith(before) else self._render(new, None, True)
            )
            delta, added = self._encode_with_images(self.after_eos + text, pngs)
            ids = state["ids"] + delta
        images: list[tuple[Any, Any]] = list(state.get("images", []))
        if added is not None:
            images.append(added)
        reset = False
        if len(ids) + max_new_tokens > self.max_context_tokens:
            budget = max(1, self.max_context_tokens - max_new_tokens)
            fitted = fit_messages(
                chat.messages,
                budget,
                count=lambda m: len(self.encode(str(m.get("content") or ""))) + 8,
            )
            ids = delta = self.encode(self._render(fitted, tools, True))[-budget:]
            images = []  # the rebuilt context is text only
            reset = True
        state["ids"] = ids
        state["images"] = images
        state["next"] = len(chat.messages) + 1  # the reply about to be sampled is kept as tokens
        return ids, delta, reset

    @staticmethod
    def images(chat: Chat) -> tuple[Any, Any] | None:
        """The pixel values and ``image_grid_thw`` of every image in ``chat``'s token sequence,
        in order (``None`` without images): what the model needs with those tokens."""
        images: list[tuple[Any, Any]] = chat.state.get("images", [])
        if not images:
            return None
        import torch

        return torch.cat([p for p, _ in images]), torch.cat([g for _, g in images])

    def record(self, chat: Chat, completion: list[int]) -> tuple[list[int], list[int]]:
        """Append a completion; a reply cut at the length limit gets an end-of-turn token (mask 0).

        Returns the completion tokens as appended and their sampled mask.
        """
        tokens = list(completion)
        mask = [1] * len(tokens)
        if not tokens or tokens[-1] not in self.stop_ids:
            tokens.append(self.eos_id)
            mask.append(0)
        chat.state["ids"] = chat.state["ids"] + tokens
        return tokens, mask

    def decode(self, tokens: list[int]) -> str:
        """The reply's text: the tokens before the end-of-turn token, invalid bytes replaced."""
        if tokens and tokens[-1] in self.stop_ids:
            tokens = tokens[:-1]
        text = str(self.tokenizer.decode(tokens, skip_special_tokens=False))
        for special in (self.tokenizer.pad_token, self.tokenizer.eos_token):
            if special:
                text = text.replace(special, "")
        return text

    def action(
        self,
        chat: Chat,
        prompt: tuple[list[int], list[int], bool],
        completion: list[int],
        logprobs: list[float],
        *,
        latency_s: float,
        finish_reason: str | None = None,
    ) -> Action:
        """Record a sampled completion in ``chat`` and describe it as an :class:`Action`.

        ``prompt`` is what :meth:`prompt` returned for this turn; ``logprobs`` are the
        sampled tokens' (padded with 0 for an appended end-of-turn token).
        """
        ids, delta, reset = prompt
        tokens, mask = self.record(chat, completion)
        logprobs = list(logprobs) + [0.0] * (len(tokens) - len(logprobs))
        text = self.decode(tokens)
        return Action(
            text=text,
            token_ids=tokens,
            logprobs=logprobs,
            prompt_ids=delta,
            sampled_mask=mask,
            context_reset=reset,
            tool_calls=tool_calls_in_text(text),
            prompt_tokens=len(ids),
            completion_tokens=int(sum(mask)),
            latency_s=latency_s,
            finish_reason=finish_reason or ("stop" if mask[-1] == 1 else "length"),
        )


def over_budget(
    prompts: list[tuple[list[int], list[int], bool]],
    budget: int | None,
    max_new_tokens: int,
) -> tuple[list[int], dict[int, Action]]:
    """Split a batch's prompts into those that may sample and the episodes that end here.

    With a token budget, an episode ends when its next turn could not fit, and when its
    conversation had to be cut to fit the context: its tokens are then no longer one
    sequence the trainer could learn from. Returns the indices that may sample and the
    ending action of each other index.
    """
    live = [
        i
        for i, (ids, _, reset) in enumerate(prompts)
        if budget is None or (not reset and len(ids) + max_new_tokens <= budget)
    ]
    ended = {
        i: Action(text="", end_reason=f"episode token budget ({budget}) reached")
        for i in range(len(prompts))
        if i not in live
    }
    return live, ended
