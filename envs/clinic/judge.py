"""Deciding whether a stated diagnosis is right: the strict examiner, or an LLM judge.

The default ``alias`` judge is :class:`~rounds.envs.clinic.matching.DiagnosisMatcher`
(catalogue phrases, qualifiers, negations and hedges; see its module). The
``llm`` judge asks a model behind an OpenAI-compatible endpoint whether the two
name the same condition; if the endpoint fails, the examiner decides and the
judge counts the fallback. Both share the rules no model should overrule: the
truth's own text is correct, and an answer that commits to no single diagnosis
(a differential, a hedge, a negation) is wrong without asking the model.
"""

from __future__ import annotations

from typing import Any

from rounds.envs.clinic.matching import DiagnosisMatcher

JUDGE_PROMPT = (
    "You are grading a diagnostic exercise. Decide whether the stated diagnosis names the same "
    "condition as the reference diagnosis (synonyms, abbreviations and added detail such as a "
    "location or a cause still count; a different or broader disease does not).\n"
    "Reference diagnosis: {truth}\nStated diagnosis: {stated}\n"
    "Answer with one word: yes or no."
)


class LLMJudge:
    """A yes/no judgement from a chat model, falling back to alias matching on failure."""

    def __init__(
        self, matcher: DiagnosisMatcher, *, model: str, base_url: str, **client_options: Any
    ) -> None:
        from rounds.models.openai_client import OpenAIClient

        self.matcher = matcher
        self.model = model
        self.client = OpenAIClient(base_url, **client_options)
        self.fallbacks = 0

    def same(self, stated: str, truth: str, truth_name: str) -> bool:
        from rounds.models.openai_client import APIError

        if self.matcher.verbatim(stated, truth_name):
            return True
        if self.matcher.commitment(stated) is not None:
            return False
        prompt = JUDGE_PROMPT.format(truth=truth_name, stated=stated)
        try:
            reply = self.client.chat(
                self.model, [{"role": "user", "content": prompt}], temperature=0.0, max_tokens=4
            )
        except APIError:
            self.fallbacks += 1
            return self.matcher.same(stated, truth)
        word = reply.text.strip().lower()
        if word.startswith("yes"):
            return True
        if word.startswith("no"):
            return False
        self.fallbacks += 1
        return self.matcher.same(stated, truth)

    def close(self) -> None:
        self.client.close()
