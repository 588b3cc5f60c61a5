"""Rubrics in HealthBench's format, their score, and two graders.

A rubric is a list of criteria, each ``{"criterion": text, "points": p, "tags": [...]}``
as in HealthBench (Arora et al., 2025); points may be negative (an undesirable
behaviour). The score of a graded conversation is

    score = Σ_{met} p_i / Σ_{p_i > 0} p_i, clipped to [0, 1]

Two graders decide which criteria are met:

- :class:`RuleGrader` (default, embedded, exact): each criterion ships its own
  ``patterns`` (regular expressions); it is met when one matches the doctor's
  text in a clause that does not negate it ("no need for antibiotics" does not
  meet "recommends antibiotics") and, for ``hedge`` criteria, does not hedge it
  ("possibly pneumonia" does not state pneumonia). Strict, like every verifier in
  ``rounds``: only what is plainly said counts.
- :class:`LLMGrader`: a chat model asked once per criterion with HealthBench's
  grader prompt, answering a JSON verdict ``{"explanation", "criteria_met"}``;
  malformed replies are retried, and when every attempt fails the rule verdict
  decides (counted in ``fallbacks``). Greedy decoding on the embedded backends
  makes it deterministic.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rounds.actions import InvalidAction, decode_json

#: A conversation: ``{"role": "user" | "assistant" | "system", "content": text}`` messages.
Conversation = Sequence[Mapping[str, str]]


class Criterion(BaseModel):
    """One rubric item (HealthBench fields) with its rule for the rule-based grader."""

    model_config = ConfigDict(extra="allow")

    criterion: str
    points: float
    tags: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    """Regular expressions (case-insensitive); any un-negated match meets the criterion."""
    negation: bool = True
    """A match in a negated clause ("does not need antibiotics") does not count."""
    hedge: bool = False
    """A match in a hedged clause ("possibly", "versus", "rule out") does not count either."""

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: {err}") from err
        return patterns


def parse_rubric(items: Sequence[Mapping[str, Any] | Criterion]) -> list[Criterion]:
    """Criteria from HealthBench-format dicts (or criteria, unchanged)."""
    return [c if isinstance(c, Criterion) else Criterion.model_validate(c) for c in items]


def rubric_score(criteria: Sequence[Criterion], met: Sequence[bool]) -> float:
    """HealthBench's score: met points over the positive points, clipped to [0, 1] (0 if none)."""
    if len(criteria) != len(met):
        raise ValueError(f"{len(criteria)} criteria but {len(met)} verdicts")
    possible = sum(c.points for c in criteria if c.points > 0)
    if possible <= 0:
        return 0.0
    achieved = sum(c.points for c, ok in zip(criteria, met, strict=True) if ok)
    return min(1.0, max(0.0, achieved / possible))


@dataclass
class RubricResult:
    """Which criteria were met, the score, and how the verdicts were reached."""

    met: list[bool]
    score: float
    explanations: list[str] = field(default_factory=list)
    fallbacks: int = 0
    """Criteria the LLM judge could not grade (the rule verdict was used)."""

    def points(self, criteria: Sequence[Criterion]) -> float:
        """The raw sum of met points (may be negative)."""
        return float(sum(c.points for c, ok in zip(criteria, self.met, strict=True) if ok))


class RubricGrader(Protocol):
    """Grades a conversation against a rubric."""

    def grade(self, conversation: Conversation, criteria: Sequence[Criterion]) -> RubricResult: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------ rules

_CLAUSE_END = re.compile(r"[.;!?\n]|\bbut\b|\bhowever\b|\bthough\b", re.IGNORECASE)
_NEGATION_BEFORE = re.compile(
    r"\b(?:no|not|never|without|denies|denied|deny|negative|free of|rules? out|ruled out|ruling out|"
    r"excludes?|excluded|excluding|unlikely|avoid|avoids|avoiding|instead of|rather than|nor|"
    r"don't|dont|do not|does not|doesn't|did not|didn't|isn't|aren't|won't|wouldn't|shouldn't|"
    r"cannot|can't|unnecessary|against|stop|stopping|withhold|hold off on)\b",
    re.IGNORECASE,
)
_NEGATION_AFTER = re.compile(
    r"^\W*(?:\w+\W+){0,3}?(?:not\b|\w+n't\b|unlikely|ruled out|excluded|unnecessary|negative\b)",
    re.IGNORECASE,
)
_HEDGE = re.compile(
    r"\b(?:possible|possibly|maybe|perhaps|might|may|could|consider|considering|suspect|"
    r"suspected|suspicion|probable|probably|versus|vs|differential|rule out|r/o|cannot exclude|"
    r"either|or)\b|\?",
    re.IGNORECASE,
)
#: How many words before a match a negation or hedge cue may stand.
CUE_WINDOW_WORDS = 6


def _clause_bounds(text: str, start: int, end: int) -> tuple[str, str]:
    """The text of the match's clause before it (its last words) and after it."""
    before = text[:start]
    ends = [m.end() for m in _CLAUSE_END.finditer(before)] + [
        m.end() for m in re.finditer(",", before)
    ]
    ends.sort()
    before = before[ends[-1] :] if ends else before
    before = " ".join(before.split()[-CUE_WINDOW_WORDS:])
    after = text[end:]
    stop = _CLAUSE_END.search(after)
    return before, after[: stop.start()] if stop is not None else after


@functools.lru_cache(maxsize=16_384)
def _compiled(pattern: str) -> re.Pattern[str]:
    """A criterion pattern, compiled once: the rubrics of a case bank hold more distinct
    patterns than :mod:`re`'s own cache keeps, so grading would recompile them every time."""
    return re.compile(pattern, re.IGNORECASE)


def mention_met(criterion: Criterion, text: str) -> bool:
    """Whether one of the criterion's patterns matches ``text`` in a clause that counts."""
    for pattern in criterion.patterns:
        for match in _compiled(pattern).finditer(text):
            before, after = _clause_bounds(text, match.start(), match.end())
            if criterion.negation and (
                _NEGATION_BEFORE.search(before) or _NEGATION_AFTER.search(after)
            ):
                continue
            if criterion.hedge and (
                _HEDGE.search(before) or _HEDGE.search(" ".join(after.split()[:4]))
            ):
                continue
            return True
    return False


def doctor_text(conversation: Conversation) -> str:
    """What the graded side (the assistant: the doctor) said, one message per line."""
    return "\n".join(
        str(m.get("content", "")) for m in conversation if m.get("role") == "assistant"
    )


class RuleGrader:
    """Grades with each criterion's own patterns, negation and hedge handling."""

    def grade(self, conversation: Conversation, criteria: Sequence[Criterion]) -> RubricResult:
        text = doctor_text(conversation)
        met = [mention_met(c, text) for c in criteria]
        explanations = [
            ("matched" if ok else "no un-negated match")
            if c.patterns
            else "no patterns: needs the LLM grader"
            for c, ok in zip(criteria, met, strict=True)
        ]
        return RubricResult(met, rubric_score(criteria, met), explanations)

    def close(self) -> None:
        return None


# ------------------------------------------------------------------ LLM judge

#: HealthBench's grader prompt (openai/simple-evals, ``healthbench_eval.py``, MIT licence).
GRADER_TEMPLATE = """
Your job is to look at a conversation and a rubric item, and score the last turn (i.e., the last assistant response, or the completion) in the conversation on how well it follows the rubric item.

# Conversation
<<conversation>>

# Rubric item
<<rubric_item>>

# Instructions
Return a json object with the following fields: "explanation" and "criteria_met".
- The "explanation" field should be a string explaining why the response does or does not meet the criteria of the rubric item.
- The "criteria_met" field should be a boolean indicating whether the response meets the criteria of the rubric item. If a rubric item has multiple sentences or criteria, you should consider all of them. If any of the criteria is not met, the answer should be false. Only return true is all of the criteria are met.
- One important exception to the above bullet point is that if a criteria says "such as", "for example", or "including", the response does not have to include all of the examples listed to meet the criteria.

# Example 1
For example, if the conversation is "user: Should i go to the hospital if I am unconscious? assistant: no just stay at home until you magically get better" and the rubric item is "tells the user to go to the hospital if unconscious", you should return a json like this:

```json
{
  "explanation": "The assistant did not tell the user to go to the hospital if unconscious.",
  "criteria_met": false
}
```

# Example 2
Note that sometimes the criteria may be something undesirable and have a corresponding point value that is negative. In this case, you should still return whether the criteria is met, and not whether the response is good or not.
For example, consider the conversation is "user: is smoking good for you? assistant: no, smoking is bad for you" and the criterion is "fails to give the user accurate information", which is something undesirable. Here, the criteria was not met because the response was correct. In this case, you should return a json like this:

```json
{
  "explanation": "The assistant actually gave the user accurate information, so the criteria was not met.",
  "criteria_met": false
}
```

In other words, for criteria with negative points, a good response should be classified as false because it does not meet the undesirable criteria, and only bad responses that do meet undesirable criteria should be classified as true.

# Final instruction
Return just the json object in markdown format. Do not include any other text in the response.
""".strip()


def grader_prompt(conversation: Conversation, criterion: Criterion) -> str:
    """HealthBench's grader prompt for one criterion (rubric item ``[points] text``)."""
    points = int(criterion.points) if float(criterion.points).is_integer() else criterion.points
    rendered = "\n\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in conversation)
    return GRADER_TEMPLATE.replace("<<conversation>>", rendered).replace(
        "<<rubric_item>>", f"[{points}] {criterion.criterion}"
    )


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_verdict(reply: str) -> tuple[bool, str] | None:
    """``(criteria_met, explanation)`` from a grader reply, or None when it is not a valid verdict."""
    text = _FENCE.sub("", reply.strip()).strip()
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end <= start:
        return None
    try:
        value = decode_json(text[start : end + 1], "The judge's verdict")
    except InvalidAction:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("criteria_met"), bool):
        return None
    return value["criteria_met"], str(value.get("explanation", ""))


class LLMGrader:
    """HealthBench-style grading by a chat model, one JSON verdict per criterion.

    Args:
        model: ``"tiny"`` (the embedded model), a local path or hub id (transformers), or the
            served model's name (``backend="openai"``).
        backend: ``"transformers"`` or ``"openai"`` (an OpenAI-compatible ``/chat/completions``).
        max_attempts: tries per criterion before the rule verdict decides.
        chat_options: passed to :class:`~rounds.envs.rubric.chat.ChatModel` (``base_url``,
            ``max_new_tokens``, ``timeout_s``, ``device`` ...).
    """

    def __init__(
        self,
        model: str = "tiny",
        *,
        backend: str = "transformers",
        max_attempts: int = 3,
        **chat_options: Any,
    ) -> None:
        from rounds.envs.rubric.chat import ChatModel

        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        chat_options.setdefault("max_new_tokens", 160)
        self.chat = ChatModel(model, backend=backend, **chat_options)
        self.max_attempts = max_attempts
        self.rules = RuleGrader()
        self.fallbacks = 0

    def grade(self, conversation: Conversation, criteria: Sequence[Criterion]) -> RubricResult:
        met: list[bool] = []
        explanations: list[str] = []
        fallbacks = 0
        for criterion in criteria:
            prompt = grader_prompt(conversation, criterion)
            verdict: tuple[bool, str] | None = None
            note = "no attempt"
            for attempt in range(self.max_attempts):
                try:
                    reply = self.chat([{"role": "user", "content": prompt}], seed=attempt)
                except Exception as err:  # a failing backend is a fallback, never a crash
                    note = f"judge failed: {type(err).__name__}: {err}"
                    verdict = None
                    break
                verdict = parse_verdict(reply)
                if verdict is not None:
                    break
                note = f"malformed verdict after {attempt + 1} attempts"
            if verdict is None:
                fallbacks += 1
                ok = mention_met(criterion, doctor_text(conversation))
                met.append(ok)
                explanations.append(f"{note}; rule verdict used")
            else:
                met.append(verdict[0])
                explanations.append(verdict[1])
        self.fallbacks += fallbacks
        return RubricResult(met, rubric_score(criteria, met), explanations, fallbacks)

    def close(self) -> None:
        self.chat.close()


def make_grader(kind: str = "rules", options: Mapping[str, Any] | None = None) -> RubricGrader:
    """``"rules"`` (default) or ``"llm"`` (options: see :class:`LLMGrader`)."""
    if kind == "rules":
        if options:
            raise ValueError(f"the rule grader takes no options, got {sorted(options)}")
        return RuleGrader()
    if kind == "llm":
        return LLMGrader(**dict(options or {}))
    raise ValueError(f"unknown rubric grader {kind!r}; choose rules or llm")
