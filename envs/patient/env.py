"""``rounds/PatientSim-v0``: the env class."""

from __future__ import annotations

import copy
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from rounds.actions import InvalidAction, excerpt, parse_tool_calls, split_reasoning
from rounds.envs.clinic.cases import stable_seed
from rounds.envs.clinic.knowledge import load_knowledge
from rounds.envs.clinic.matching import normalise
from rounds.envs.patient.cases import PatientCase, load_cases
from rounds.envs.patient.generate import generated_bank
from rounds.envs.patient.lay import load_lay_table
from rounds.envs.patient.patient import (
    LLMPatient,
    PatientMind,
    Persona,
    make_patient,
)
from rounds.envs.patient.shapley import (
    EXACT_MAX_FACTS,
    MC_TOLERANCE,
    AdditiveValue,
    ShapleyResult,
    ValueFunction,
    candidate_shapley,
    coalition_mask,
    fact_weights,
    shapley_values,
)
from rounds.envs.patient.values import (
    knowledge_value,
    lexical_value,
    policy_value,
    supports_knowledge,
)
from rounds.envs.rubric.grader import RubricGrader, RubricResult, make_grader, parse_rubric
from rounds.text_env import EpisodeEnd, ScriptedPolicy, StepResult, TextEnv

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "ask",
            "description": "Ask the patient one question.",
            "parameters": {
                "type": "object",
                "properties": {"question": {"type": "string", "description": "One question."}},
                "required": ["question"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "answer",
            "description": "Give the final answer (an option letter, or your assessment and plan); this ends the consultation.",
            "parameters": {
                "type": "object",
                "properties": {"answer": {"type": "string", "description": "The answer."}},
                "required": ["answer"],
            },
        },
    },
]

FORMAT_HELP = (
    "Reply with 'question: <one question for the patient>' (or just the question), "
    "'answer: <option letter>' for a multiple-choice question, 'answer: <assessment and plan>' "
    'for a consultation, or a tool call {"name": "ask", "arguments": {"question": "..."}} / '
    '{"name": "answer", "arguments": {"answer": "..."}}.'
)
REPEAT_PENALTY = -0.05
_ANSWER_LINE = re.compile(
    r"^[\s*#>-]*(?:final\s+)?(?:answer|assessment(?:\s+and\s+plan)?)\s*[:=]\s*(?P<body>.*)",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)
_QUESTION_LINE = re.compile(r"^[\s*#>-]*(?:question|ask)\s*[:=]\s*", re.IGNORECASE)
_LETTER = re.compile(r"^\(?(?P<letter>[A-Ja-j])(?:\)|\.|:|\s|$)")
ASK_TOOLS = ("ask", "ask_question", "question", "ask_patient")
ANSWER_TOOLS = ("answer", "final_answer", "submit", "conclude")
#: Episodes' Shapley values kept per env (a file case's Monte Carlo is the slow part).
SHAPLEY_CACHE_SIZE = 4096


class PatientSimEnv(TextEnv):
    """A consultation with a simulated patient who knows facts the doctor does not.

    ## Description
    After ProMed (Shapley information gain for proactive medical LLMs) and
    patient-simulator benchmarks. Two task families share the env:

    1. *Partial-information questions* (ProMed style): a multiple-choice clinical
       question of which only some atomic facts are shown; the others are revealed
       only when the doctor asks about them. Outcome: the chosen option is correct.
    2. *Open consultations*: the patient presents a complaint; the doctor takes a
       history and ends with an assessment and plan, graded by the case's rubric
       (HealthBench format: ``Σ met points / Σ positive points``, clipped to [0, 1]).

    Cases are generated reproducibly from the clinic's knowledge base (360
    multiple-choice cases, 240/60/60 train/validation/test, and 120
    consultations, 80/20/20), or read from a ProMed-layout JSONL file. The
    patient (``facts`` backend, or an ``llm`` with a guard) answers in the first
    person, only from the facts, in a persona's words. A research simulator, not
    clinical guidance.

    ## Action Space
    Text: ``question: ...`` or a plain question (one per turn), ``answer: C`` (or the
    option's text), ``answer: <assessment and plan>`` in a consultation, or a JSON tool
    call ``ask`` / ``answer`` (see ``tools``). Reasoning in ``<think>`` blocks is allowed.

    ## Observation Space
    Text: the shown facts, the question and its options (or the patient's opening
    words) on reset; then ``Patient: "..."`` after each question.

    ## Rewards
    The weighted sum of the components (default weights: outcome 1, format 1,
    repeat_penalty 1, shapley_info_gain 1). ProMed's reward (question tokens
    ``α g + β g·1[correct]``, answer ``γ·1[correct]``, α=2, β=1, γ=3) is the variant
    ``promed`` with the trainer's gated accumulation for the β term.

    ## Reward Components
    | key | non-zero when | range |
    |---|---|---|
    | ``outcome`` | final turn: the option is correct (multiple choice) or the rubric score (consultation) | [0, 1] |
    | ``format`` | invalid reply (unparseable answer, a question after the limit, a barrage of questions) | {-invalid_action_penalty, 0} |
    | ``repeat_penalty`` | a question that only re-asks facts already known, or repeats an earlier question | {-0.05, 0} |
    | ``shapley_info_gain`` | a question acquires new hidden facts: the sum of their weights (Shapley values φ_i by default) | [-1, 1]; all hidden facts together earn v(all) − v(∅) |

    Shapley values are computed once per case for the gold answer, exactly by
    enumeration up to 12 hidden facts and by permutation Monte Carlo above (every
    φ_i's 95% half-width below ``shapley_tolerance``, default 0.01). A re-asked fact
    earns nothing. ``info["value"]`` is the value function's probability of the gold
    answer given the facts acquired so far.

    ## Starting State
    A case of the split; a persona drawn from the episode's seed.

    ## Episode End
    Terminated by an answer. Truncated after ``max_questions`` questions and one more
    turn (the observation after the last question says the next reply must be the
    answer). ``info["metrics"]``: ``answered``, ``accuracy`` (multiple choice) or
    ``rubric_score`` (consultation), ``facts_acquired``, ``facts_fraction``,
    ``info_gain_total``, ``questions``, ``final_value``, ``invalid_actions``, and
    ``llm_fallbacks`` for the ``llm`` patient. ``info["answer"]`` is the gold reply
    (``"answer: C"``, or ``"answer: <diagnosis>"`` in a consultation), for IGPO.

    ## Arguments
    - ``cases``: ``"generated"`` (default) or a ProMed-layout JSONL/JSON path.
    - ``family``: ``"all"`` (default), ``"mcq"`` or ``"consultation"``.
    - ``max_questions``: the question limit (default 10).
    - ``patient``: ``"facts"`` (default) or ``"llm"`` with ``patient_options``
      (``model``, ``backend``, ``base_url``, ...).
    - ``value_function``: ``"knowledge"`` (default for generated cases), ``"lexical"``
      (default for files), or ``"policy"`` with ``value_options={"model": ...}``.
    - ``gain_weighting``: ``"shapley"`` (φ_i) or ``"softmax"`` (ProMed's softmax(φ/2)).
    - ``shapley_tolerance``, ``exact_max_facts``: the Monte Carlo stop and the exact limit.
    - ``rubric_grader``: ``"rules"`` (default) or ``"llm"`` with ``rubric_options``.
    - ``persona``: ``"random"`` (default, per episode) or a dict of :class:`Persona` fields.
    - ``patient_options`` for ``facts``: ``threshold``, ``relative``, ``max_facts``.
    - ``split``, ``reward_weights``, ``invalid_action_penalty``, ``max_action_chars``,
      ``render_mode``: see :class:`~rounds.TextEnv`.

    ## Version History
    - v0: first release.
    """

    reward_component_names = ("outcome", "format", "repeat_penalty", "shapley_info_gain")
    outcome_components = ("outcome",)
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "outcome": 1.0,
        "format": 1.0,
        "repeat_penalty": 1.0,
        "shapley_info_gain": 1.0,
    }
    variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "mcq": {"family": "mcq"},
        "consultation": {"family": "consultation"},
        "promed": {"family": "mcq", "reward_weights": {"outcome": 3.0, "shapley_info_gain": 2.0}},
        "outcome-only": {"reward_weights": {"shapley_info_gain": 0.0, "repeat_penalty": 0.0}},
    }
    replay_metrics = ("accuracy", "rubric_score", "facts_acquired", "info_gain_total", "questions")
    replay_series = ("value",)

    def __init__(
        self,
        *,
        cases: str = "generated",
        family: str = "all",
        max_questions: int = 10,
        patient: str = "facts",
        patient_options: Mapping[str, Any] | None = None,
        value_function: str | None = None,
        value_options: Mapping[str, Any] | None = None,
        gain_weighting: str = "shapley",
        shapley_tolerance: float = MC_TOLERANCE,
        exact_max_facts: int = EXACT_MAX_FACTS,
        rubric_grader: str = "rules",
        rubric_options: Mapping[str, Any] | None = None,
        persona: str | Mapping[str, Any] = "random",
        **kwargs: Any,
    ) -> None:
        if max_questions < 1:
            raise ValueError(f"max_questions must be at least 1, got {max_questions}")
        kwargs.setdefault("max_turns", max_questions + 1)
        super().__init__(**kwargs)
        if family not in ("all", "mcq", "consultation"):
            raise ValueError(f"unknown family {family!r}; choose all, mcq or consultation")
        fact_weights(np.zeros(1), gain_weighting)  # validates the name
        if value_function not in (None, "knowledge", "lexical", "policy"):
            raise ValueError(
                f"unknown value_function {value_function!r}; choose knowledge, lexical or policy"
            )
        self.kb = load_knowledge()
        self.lay = load_lay_table()
        self.generated = cases == "generated"
        loaded = list(generated_bank().values()) if self.generated else load_cases(cases)
        self.cases: dict[str, PatientCase] = {
            str(c.id): c
            for c in loaded
            if family == "all" or (family == "consultation") == c.consultation
        }
        if not self.cases:
            raise ValueError(f"{cases}: no {family} cases")
        self._splits: dict[str, list[str]] = {}
        for case_id, case in self.cases.items():
            if case.split is not None:
                self._splits.setdefault(case.split, []).append(case_id)
        self.family = family
        self.max_questions = max_questions
        self.patient = make_patient(patient, patient_options)
        self.value_function = value_function
        self.value_options = dict(value_options or {})
        unknown = set(self.value_options) - {"model", "device"}
        if unknown or (self.value_options and value_function != "policy"):
            raise ValueError(
                f"value_options {sorted(self.value_options)}: only value_function='policy' takes "
                "options, 'model' (a path, a hub id or 'tiny') and 'device'"
            )
        if value_function == "policy":
            from rounds.models import load_causal_lm, load_tokenizer

            name = str(self.value_options.get("model", "tiny"))
            self._policy_model = load_causal_lm(
                name, device=str(self.value_options.get("device", "cpu"))
            )
            self._policy_model.eval()
            self._policy_tokenizer = load_tokenizer(name)
        self.gain_weighting = gain_weighting
        self.shapley_tolerance = shapley_tolerance
        self.exact_max_facts = exact_max_facts
        self.grader: RubricGrader = make_grader(rubric_grader, rubric_options)
        if not isinstance(persona, Mapping) and persona != "random":
            raise ValueError(
                f"persona must be 'random' or a dict of Persona fields, got {persona!r}"
            )
        if isinstance(persona, Mapping):
            Persona(**dict(persona))  # fails now, not at the first reset
        self.persona_setting = persona
        self._shapley_cache: OrderedDict[tuple[str, str], tuple[str, ShapleyResult]] = OrderedDict()
        self._minds: OrderedDict[str, PatientMind] = OrderedDict()
        self._candidate_cache: OrderedDict[tuple[str, str], np.ndarray | None] = OrderedDict()
        # Episode state.
        self.case: PatientCase = next(iter(self.cases.values()))
        self.mind: PatientMind | None = None
        self.persona = Persona()
        self.value: ValueFunction | None = None
        self.value_kind = ""
        self.shapley: ShapleyResult | None = None
        self.weights = np.zeros(0)
        self.acquired: set[int] = set()
        self.questions = 0
        self.asked: list[str] = []
        self.transcript: list[dict[str, str]] = []
        self.chosen: str | None = None
        self.correct = False
        self.rubric: RubricResult | None = None
        self.info_gain_total = 0.0
        self.invalid_actions = 0
        self._episode_seed = 0
        self._fallbacks_at_start = 0

    # ------------------------------------------------------------- the task

    @property
    def system_prompt(self) -> str:
        return (
            "You are a physician consulting with a patient. The patient knows facts about their "
            "condition that you have not been told; you learn them only by asking. Ask one question "
            f"per turn; you may ask at most {self.max_questions} questions. Then answer.\n"
            "For a multiple-choice question, answer with the letter of one option: 'answer: C'.\n"
            "For an open consultation, end with your assessment and plan: 'answer: <the most likely "
            "diagnosis, the tests and the treatment you recommend, and when to seek urgent care>'.\n"
            "To ask, write 'question: <your question>' (or just the question). You may instead call "
            "the tools ask and answer."
        )

    @property
    def tools(self) -> list[dict[str, Any]]:
        return [dict(tool) for tool in TOOLS]

    def task_ids(self, split: str | None = None) -> Sequence[str]:
        if not self._splits:
            return list(self.cases)
        return self._splits.get(split or self.split, [])

    def scripted_policies(self) -> dict[str, ScriptedPolicy]:
        from rounds.envs.patient.baselines import ask_all_policy, greedy_policy, random_policy

        return {"random": random_policy, "ask-all": ask_all_policy, "greedy": greedy_policy}

    # ------------------------------------------------------------- per-case state

    def _mind(self, case: PatientCase) -> PatientMind:
        key = str(case.id)
        if key not in self._minds:
            forbidden = [case.answer or "", *case.options.values()]
            aliases: list[str] = []
            if case.diagnosis_id in self.kb.disease_index:
                disease = self.kb.disease(str(case.diagnosis_id))
                forbidden.append(disease.name)
                aliases = list(disease.aliases)
            self._minds[key] = PatientMind.of(case, self.lay, forbidden, aliases)
            if len(self._minds) > SHAPLEY_CACHE_SIZE:
                self._minds.popitem(last=False)
        return self._minds[key]

    def _value_kind(self, case: PatientCase) -> str:
        """The chosen value function, or the default for this case. ``lexical`` and ``policy``
        score answer options, so a consultation uses the default instead (``knowledge``, or
        ``none`` for a consultation file whose facts carry no knowledge-base observations)."""
        chosen = self.value_function
        if chosen is not None and (chosen == "knowledge" or case.options):
            return chosen
        if supports_knowledge(self.kb, case):
            return "knowledge"
        return "lexical" if case.options else "none"

    def make_value(self, case: PatientCase) -> tuple[str, ValueFunction]:
        """The case's value function (kind, function); ``none`` for a consultation file without facts' meaning."""
        kind = self._value_kind(case)
        if kind == "knowledge":
            return kind, knowledge_value(self.kb, case)
        if kind == "lexical":
            return kind, lexical_value(self.kb, self.lay, case)
        if kind == "policy":
            return kind, policy_value(case, self._policy_model, self._policy_tokenizer)
        hidden = len(case.facts) - case.shown_count
        return kind, AdditiveValue(np.zeros(1), np.zeros((hidden, 1)), 0)

    def _case_shapley(self, case: PatientCase) -> tuple[str, ValueFunction, ShapleyResult]:
        kind, value = self.make_value(case)
        key = (str(case.id), kind)
        if key in self._shapley_cache:
            self._shapley_cache.move_to_end(key)
            return kind, value, self._shapley_cache[key][1]
        result = shapley_values(
            value,
            exact_max_facts=self.exact_max_facts,
            tolerance=self.shapley_tolerance,
            seed=stable_seed("shapley", case.id),
        )
        self._shapley_cache[key] = (kind, result)
        if len(self._shapley_cache) > SHAPLEY_CACHE_SIZE:
            self._shapley_cache.popitem(last=False)
        return kind, value, result

    def candidate_shapley(self) -> np.ndarray | None:
        """``(hidden facts, candidates)``: each hidden fact's Shapley value for every candidate
        answer as the target (for the ``greedy`` doctor); None when the value function is not
        additive or the case has too many facts."""
        if not isinstance(self.value, AdditiveValue) or self.value_kind == "none":
            return None
        key = (str(self.case.id), f"candidates:{self.value_kind}")
        if key not in self._candidate_cache:
            self._candidate_cache[key] = candidate_shapley(self.value)
            if len(self._candidate_cache) > SHAPLEY_CACHE_SIZE:
                self._candidate_cache.popitem(last=False)
        return self._candidate_cache[key]

    def _persona(self) -> Persona:
        if isinstance(self.persona_setting, Mapping):
            return Persona(**dict(self.persona_setting))
        return Persona.sample(self.np_random)

    def current_value(self) -> float:
        """The value function's probability of the gold answer given the facts acquired so far."""
        assert self.value is not None
        return float(self.value.values(np.array([coalition_mask(sorted(self.acquired))]))[0])

    def gold_reply(self) -> str:
        """The gold answer as the reply the system prompt asks for (``info["answer"]``)."""
        case = self.case
        if case.consultation:
            return f"answer: {case.answer or ''}"
        return f"answer: {case.answer_idx}"

    @property
    def hidden_count(self) -> int:
        return len(self.case.facts) - self.case.shown_count

    # ------------------------------------------------------------- hooks

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if task_id not in self.cases:
            raise ValueError(
                f"unknown PatientSim task id {task_id!r}; ids look like 'mcq-test-0000' or "
                f"'consult-test-0000' (generated) or a case file's ids"
            )
        case = self.cases[task_id]
        self.case = case
        self.mind = self._mind(case)
        self.persona = self._persona()
        self._episode_seed = int(self.np_random.integers(2**31))
        self.value_kind, self.value, self.shapley = self._case_shapley(case)
        self.weights = fact_weights(self.shapley.phi, self.gain_weighting)
        self.acquired, self.questions, self.asked = set(), 0, []
        self.chosen, self.correct, self.rubric = None, False, None
        self.info_gain_total, self.invalid_actions = 0.0, 0
        self._fallbacks_at_start = getattr(self.patient, "fallbacks", 0)
        shown = case.facts[: case.shown_count]
        if case.consultation:
            opening = case.opening or (
                self.mind.facts[0].says_plainly
                if self.persona.literacy == "low"
                else self.mind.facts[0].says
            )
            self.transcript = [{"role": "user", "content": opening}]
            observation = (
                f'The patient says: "{opening}"\n\nTake a history (at most {self.max_questions} '
                "questions), then give your assessment and plan with 'answer: ...'."
            )
        else:
            self.transcript = [{"role": "user", "content": " ".join(shown)}]
            options_text = "\n".join(f"{k}. {v}" for k, v in sorted(case.options.items()))
            question = case.atomic_question or case.question
            observation = (
                f"{' '.join(shown)}\n\n{question}\n{options_text}\n\n"
                f"You may ask the patient up to {self.max_questions} questions before answering "
                "with 'answer: <letter>'."
            )
        return observation, {
            "answer": self.gold_reply(),
            "family": "consultation" if case.consultation else "mcq",
            "value_function": self.value_kind,
            "shapley_method": self.shapley.method,
            "persona": self.persona.describe(),
            "value": self.current_value(),
        }

    def _parse(self, text: str) -> tuple[str, str]:
        """``("ask" | "answer", text)`` from a reply."""
        body = split_reasoning(text).command
        if not body:
            raise InvalidAction(f"The reply has nothing outside the reasoning. {FORMAT_HELP}")
        calls = parse_tool_calls(body)
        if calls:
            call = calls[0]
            tool = call.name.lower()
            if tool in ASK_TOOLS:
                keys: tuple[str, ...] = ("question", "text", "q")
                kind = "ask"
            elif tool in ANSWER_TOOLS:
                keys = ("answer", "option", "letter", "assessment", "text")
                kind = "answer"
            else:
                raise InvalidAction(f"Unknown tool {excerpt(call.name, 40)}. {FORMAT_HELP}")
            value = next((call.arguments[k] for k in keys if k in call.arguments), None)
            if not isinstance(value, str) or not value.strip():
                raise InvalidAction(
                    f"{tool} needs a non-empty string argument {keys[0]!r}. {FORMAT_HELP}"
                )
            return kind, value.strip()
        answer = _ANSWER_LINE.search(body)
        if answer is not None:
            return "answer", answer.group("body").strip()
        return "ask", _QUESTION_LINE.sub("", body.strip(), count=1).strip()

    def _act(self, text: str) -> StepResult:
        kind, body = self._parse(text)
        if kind == "answer":
            return self._answer(body)
        return self._ask(body)

    def _resolve_option(self, body: str) -> str:
        case = self.case
        letter = _LETTER.match(body.strip())
        if letter is not None and letter.group("letter").upper() in case.options:
            return letter.group("letter").upper()
        key = normalise(body)
        for option_letter, option in case.options.items():
            if key and key == normalise(option):
                return option_letter
        raise InvalidAction(
            f"{excerpt(body)} is not one of the options {', '.join(sorted(case.options))}. "
            "Answer with one letter, e.g. 'answer: C'."
        )

    def _answer(self, body: str) -> StepResult:
        if not body:
            raise InvalidAction(f"The answer is empty. {FORMAT_HELP}")
        case = self.case
        self.transcript.append({"role": "assistant", "content": body})
        if case.consultation:
            criteria = parse_rubric(case.rubrics or [])
            self.rubric = self.grader.grade(self.transcript, criteria)
            self.chosen = body
            message = "Thank you, doctor. The consultation is over."
            final = body
        else:
            self.chosen = self._resolve_option(body)
            self.correct = self.chosen == case.answer_idx
            message = f"Answer recorded: {self.chosen}. The consultation is over."
            final = self.chosen
        return StepResult(
            message,
            terminated=True,
            info={
                "answer": self.gold_reply(),
                "final_answer": final,
                "value": self.current_value(),
            },
        )

    def _ask(self, question: str) -> StepResult:
        if not question:
            raise InvalidAction(f"The question is empty. {FORMAT_HELP}")
        if self.questions >= self.max_questions:
            raise InvalidAction(
                f"You have asked all {self.max_questions} questions. Your reply must now be your "
                "answer: 'answer: <letter>' (or your assessment and plan)."
            )
        assert self.mind is not None
        shown = self.case.shown_count
        reply = self.patient.reply(
            self.mind,
            self.persona,
            question,
            seed=self._episode_seed * 1009 + self.questions,
            history=self.transcript[1:],
        )
        if reply.intent == "overload":
            raise InvalidAction(f'Patient: "{reply.text}"\nAsk one question per turn.')
        self.questions += 1
        hidden = [i - shown for i in reply.revealed if i >= shown]
        new = [i for i in hidden if i not in self.acquired]
        repeated = normalise(question) in {normalise(q) for q in self.asked}
        gain = float(sum(self.weights[i] for i in new))
        self.acquired.update(new)
        self.info_gain_total += gain
        self.asked.append(question)
        self.transcript += [
            {"role": "assistant", "content": question},
            {"role": "user", "content": reply.text},
        ]
        components = {"shapley_info_gain": gain}
        if repeated or (reply.revealed and not new):
            components["repeat_penalty"] = REPEAT_PENALTY
        observation = f'Patient: "{reply.text}"'
        if self.questions >= self.max_questions:
            observation += (
                f"\n\nYou have asked {self.max_questions} questions, the limit. Your next reply "
                "must be your answer."
            )
        return StepResult(
            observation,
            components,
            info={
                "answer": self.gold_reply(),
                "value": self.current_value(),
                "facts_new": len(new),
                "patient_intent": reply.intent,
                "patient_fallback": reply.fallback,
            },
        )

    # ------------------------------------------------------------- snapshots

    #: The attributes that make up an episode's state (the case data itself is shared and read-only).
    _EPISODE_STATE = (
        "task_id",
        "turn",
        "_started",
        "_done",
        "_last_observation",
        "case",
        "mind",
        "persona",
        "value",
        "value_kind",
        "shapley",
        "weights",
        "acquired",
        "questions",
        "asked",
        "transcript",
        "chosen",
        "correct",
        "rubric",
        "info_gain_total",
        "invalid_actions",
        "_episode_seed",
        "_fallbacks_at_start",
    )

    def snapshot(self) -> dict[str, Any]:
        """An exact copy of the episode's state; :meth:`restore` it to replay byte for byte."""
        shared = {"case", "mind", "value", "shapley"}  # immutable during an episode
        state = {
            name: getattr(self, name) if name in shared else copy.deepcopy(getattr(self, name))
            for name in self._EPISODE_STATE
        }
        state["np_random_state"] = copy.deepcopy(self.np_random.bit_generator.state)
        return state

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Return to a :meth:`snapshot` (of this env or one built with the same arguments)."""
        shared = {"case", "mind", "value", "shapley"}
        for name in self._EPISODE_STATE:
            value = snapshot[name]
            setattr(self, name, value if name in shared else copy.deepcopy(value))
        self.np_random.bit_generator.state = copy.deepcopy(snapshot["np_random_state"])

    def reject(self, message: str) -> StepResult:
        self.invalid_actions += 1
        return super().reject(message)

    def _finish(self, terminated: bool) -> EpisodeEnd:
        case = self.case
        n = self.hidden_count
        metrics: dict[str, float] = {
            "answered": float(self.chosen is not None),
            "facts_acquired": float(len(self.acquired)),
            "facts_fraction": len(self.acquired) / n if n else 1.0,
            "info_gain_total": self.info_gain_total,
            "questions": float(self.questions),
            "final_value": self.current_value(),
            "invalid_actions": float(self.invalid_actions),
        }
        if isinstance(self.patient, LLMPatient):
            metrics["llm_fallbacks"] = float(self.patient.fallbacks - self._fallbacks_at_start)
        if case.consultation:
            score = self.rubric.score if self.rubric is not None else 0.0
            metrics["rubric_score"] = score
            metrics["success"] = score
            outcome = score
        else:
            metrics["accuracy"] = float(self.correct)
            metrics["success"] = float(self.correct)
            outcome = float(self.correct)
        return EpisodeEnd(components={"outcome": outcome}, metrics=metrics)

    def _invalid_hint(self) -> str:
        return FORMAT_HELP

    def _truncation_message(self) -> str:
        return f"The question limit ({self.max_questions}) was reached without an answer."

    def close(self) -> None:
        close = getattr(self.patient, "close", None)
        if callable(close):
            close()
        self.grader.close()
        super().close()


__all__ = ["PatientSimEnv"]
