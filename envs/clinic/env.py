"""``rounds/DiagGym-v0``: the env class."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from rounds.actions import InvalidAction, excerpt
from rounds.envs.clinic.cases import CaseRecord, stable_seed
from rounds.envs.clinic.exam_names import ExamNameTable, shared_exam_matcher
from rounds.envs.clinic.knowledge import load_knowledge
from rounds.envs.clinic.matching import normalise, shared_diagnosis_matcher
from rounds.envs.clinic.parsing import FORMAT_HELP, ClinicAction, parse_action
from rounds.envs.clinic.posterior import Posterior
from rounds.envs.clinic.sources import make_source, restrict_source
from rounds.envs.clinic.world_model import (
    ClinicCase,
    ExamRequest,
    KnowledgeWorldModel,
    LookupWorldModel,
    WorldModel,
)
from rounds.snapshots import restore_state, snapshot_state
from rounds.stats import harmonic_mean
from rounds.text_env import EpisodeEnd, ScriptedPolicy, StepResult, TextEnv

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "order_exam",
            "description": "Order one examination (lab test, imaging, ECG, bedside test or physical examination).",
            "parameters": {
                "type": "object",
                "properties": {
                    "exam": {
                        "type": "string",
                        "description": "The examination, e.g. 'Complete blood count'.",
                    }
                },
                "required": ["exam"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "diagnose",
            "description": "Commit to the final diagnosis; this ends the consultation.",
            "parameters": {
                "type": "object",
                "properties": {
                    "diagnosis": {"type": "string", "description": "One final diagnosis."}
                },
                "required": ["diagnosis"],
            },
        },
    },
]

#: The raw value of the ``completion`` component (DiagAgent: 0.1 for giving a diagnosis).
COMPLETION_BONUS = 0.1
#: The factor of the ``exam_f1`` component (DiagAgent: 0.5 x F1).
EXAM_F1_FACTOR = 0.5
REPEAT_PENALTY = -0.1
#: The ``five-diagnoses`` variant: common diagnoses with distinct chief complaints (diarrhoea,
#: back pain, dysuria, flank pain, shortness of breath) and similar numbers of bank cases, so
#: the triage note points to the answer and no diagnosis is a majority guess.
FIVE_DIAGNOSES = (
    "gastroenteritis",
    "mechanical_back_pain",
    "cystitis",
    "renal_colic",
    "asthma_exacerbation",
)


class DiagGymEnv(TextEnv):
    """A virtual clinic: order exams from a world model, then commit to a diagnosis.

    ## Description
    After DiagGym (Qiu et al., 2025). The agent sees a patient's initial
    presentation (a triage note) and, turn by turn, orders one examination (the
    full history and the vital signs among them) and reads its result, until it
    commits to a final diagnosis.
    Cases come from an explicit case model over a knowledge base of 92
    emergency and internal-medicine diagnoses (with their common and dangerous
    mimics) and 103 examinations (labs with units and reference ranges, ECG,
    imaging, microbiology, bedside tests, physical examination, the full history
    and the vital signs), or from a
    DiagBench-layout file. Each generated patient has one latent physiological
    state from which every result is computed (acid-base by Henderson-Hasselbalch,
    one heart rate for the vital signs and the ECG, SpO2 from PaO2), and each
    diagnosis meets its cited definition. Because the case model is explicit, the
    env knows the exact posterior over diagnoses after every result. A research
    simulator, not clinical guidance.

    ## Action Space
    Text: a JSON tool call (``order_exam`` / ``diagnose``, see ``tools``),
    DiagAgent's free-text format, or ``exam: X`` / ``diagnosis: Y``. Exam names
    are matched to the catalogue strictly, through names, synonyms and
    hospital-style order names ("CBC", "full blood count", "CHEST (PA AND LAT)"),
    allowing typing errors only; an order that cannot be mapped with confidence is
    not available (never another test's result). Several exams in one reply: the
    first is ordered. In the ``choice`` action mode each observation ends with the
    numbered commands ``Medical history``, ``Vital signs`` and one ``diagnosis: ...``
    per candidate diagnosis, and a number answers (other exams may still be written).

    ## Observation Space
    Text: on reset the triage note (age, sex, chief complaint and the symptoms the
    patient volunteered; generated cases), then ``Exam name: ... Exam results: ...``.
    The full history (``Medical history``: associated symptoms, pertinent negatives,
    past medical history) and the ``Vital signs`` are orderable items like the
    physical examinations, reported from the same hidden case.

    ## Rewards
    The weighted sum of the components. Default weights reproduce DiagAgent's
    reward, ``0.1·[diagnosis given] + 1·[correct] + 0.5·F1(exams, reference exams)``,
    plus the ``format`` penalty for invalid replies.

    ## Reward Components
    | key | non-zero when | range |
    |---|---|---|
    | ``outcome`` | final turn, the diagnosis is correct | {0, 1} |
    | ``completion`` | final turn, a diagnosis was given | {0, 0.1} |
    | ``exam_f1`` | final turn: 0.5 x F1 of the exams ordered against the reference exams | [0, 0.5] |
    | ``info_gain`` | an exam's result changed the posterior (knowledge backend): entropy before minus after, nats (weight 0 by default) | [-ln 92, ln 92] |
    | ``format`` | invalid reply or unavailable exam | {-invalid_action_penalty, 0} |
    | ``repeat_penalty`` | the exam was already done (weight 0 by default) | {-0.1, 0} |
    | ``cost`` | an exam was done: minus its approximate US price in dollars (weight 0 by default) | [-400, 0] |
    | ``rubric`` | final turn, the case has a rubric: its score (HealthBench format, rounds.envs.rubric; weight 0 by default) | [0, 1] |

    ## Starting State
    A case from the split (``cases="bank"``: 800/200/200 fixed cases;
    ``"generated"``: unlimited; or a file path).

    ## Episode End
    Terminated by a diagnosis. Truncated after ``max_turns`` (default 12, as
    DiagAgent); the turn before the last warns that the next reply must be the
    diagnosis. ``info["metrics"]``: ``success`` (= ``diagnosis_correct``), ``diagnosis_given``,
    ``exam_precision``, ``exam_recall``, ``exam_f1``, ``hit_ratio`` (exam turns whose
    exam was a first order of an exam the case has; repeats are misses; when an exam
    was ordered), ``exams_ordered``, ``history_taken``, ``total_cost`` (the history
    and the vital signs are not tests: exam F1, the hit ratio and ``exams_ordered``
    leave them out), and with the posterior
    ``final_entropy`` and ``truth_probability``. ``info["answer"]`` is the true
    diagnosis; ``info["posterior_entropy"]`` the posterior's entropy (knowledge backend).

    ## Arguments
    - ``cases``: ``"bank"`` (default), ``"generated"``, or a DiagBench JSON/JSONL path.
    - ``world_model``: ``"knowledge"`` (default for generated cases), ``"lookup"``
      (default for files), or ``"llm"`` with ``world_model_options``.
    - ``list_exams``: list the exam catalogue in the system prompt (default True; False
      gives a prompt about 1,300 tokens shorter, for small models and fast training).
    - ``judge``: ``"alias"`` (the strict examiner of :mod:`.matching`: catalogue names and
      aliases, qualifiers, negations, hedges; a list of diagnoses scores 0) or
      ``"llm"`` with ``judge_options={"model": ..., "base_url": ...}`` (an OpenAI-compatible
      chat endpoint; the examiner decides when it fails).
    - ``accept_broader``: accept a broader term of the truth ("ACS" for STEMI); default False.
    - ``diagnoses``: knowledge-base disease ids; only cases of these diagnoses are drawn
      (the bank's cases of them, or a file's records whose final diagnosis names one),
      the system prompt names them as the candidates, and the choice mode lists them.
      Variant ``five-diagnoses``: five diagnoses with distinct chief complaints in the
      choice mode (91 train / 28 validation / 22 test bank cases).
    - ``action_mode``: ``"text"`` (default) or ``"choice"`` (see Action Space).
    - ``single_step``: DiagGym's single-turn evaluation (variant ``single-step``): the
      observation holds the case (with its history and vital signs, as the paper's
      case summaries do) and the results of the first k exams of the
      reference workup (k fixed per case, uniform over 0..all), and the agent makes one
      move. An exam scores ``hit_ratio`` 1 if it is a reference exam not yet done; a
      diagnosis scores ``diagnosis_correct``. ``success`` is either; max_turns is 1.
    - ``max_turns``, ``split``, ``reward_weights``, ``invalid_action_penalty``,
      ``max_action_chars``, ``render_mode``: see :class:`~rounds.TextEnv`.

    ## Version History
    - v0: first release; the case model since has one latent physiological state
      per case, 92 diagnoses, 103 exams, strict exam names, hit_ratio counting an exam
      once, and the single-step variant (bank ids are versioned by ``BANK_VERSION``);
      the presentation is now a triage note, with the full history and the vital
      signs orderable items.
    """

    reward_component_names = (
        "outcome",
        "completion",
        "exam_f1",
        "info_gain",
        "format",
        "repeat_penalty",
        "cost",
        "rubric",
    )
    outcome_components = ("outcome", "completion", "exam_f1")
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "outcome": 1.0,
        "completion": 1.0,
        "exam_f1": 1.0,
        "info_gain": 0.0,
        "format": 1.0,
        "repeat_penalty": 0.0,
        "cost": 0.0,
        "rubric": 0.0,
    }
    #: DiagGym's end-to-end exam F1: the harmonic mean of case-averaged precision and recall.
    derived_metrics: ClassVar[Mapping[str, tuple[tuple[str, ...], Callable[..., float]]]] = {
        "exam_f1_e2e": (("exam_precision", "exam_recall"), harmonic_mean)
    }
    replay_metrics = (
        "diagnosis_correct",
        "exam_f1_e2e",
        "exam_f1",
        "exam_precision",
        "exam_recall",
        "hit_ratio",
        "exams_ordered",
    )
    replay_series = ("posterior_entropy",)
    variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "generated": {"cases": "generated"},
        "info-gain": {"reward_weights": {"info_gain": 0.1}},
        "cost-aware": {"reward_weights": {"cost": 0.001, "repeat_penalty": 1.0}},
        "lookup": {"world_model": "lookup"},
        "single-step": {"single_step": True},
        "five-diagnoses": {
            "diagnoses": FIVE_DIAGNOSES,
            "action_mode": "choice",
            "list_exams": False,
        },
    }

    def __init__(
        self,
        *,
        cases: str = "bank",
        world_model: str | None = None,
        world_model_options: Mapping[str, Any] | None = None,
        judge: str = "alias",
        judge_options: Mapping[str, Any] | None = None,
        accept_broader: bool = False,
        list_exams: bool = True,
        max_turns: int = 12,
        single_step: bool = False,
        diagnoses: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.kb = load_knowledge()
        #: The candidate diagnoses (disease ids): ``diagnoses``, or every one the base knows.
        self.candidates = self._candidates(diagnoses)
        super().__init__(max_turns=1 if single_step else max_turns, **kwargs)
        self.single_step = single_step
        self.exams_given = 0
        """Single-step: how many reference exams the history already holds."""
        self.move: str | None = None
        """Single-step: ``"hit"``, ``"miss"`` or ``"diagnosis"`` once the agent moved."""
        self.list_exams = list_exams
        self.exam_matcher = shared_exam_matcher(self.kb)
        self.diagnosis_matcher = shared_diagnosis_matcher(self.kb, accept_broader=accept_broader)
        self.source = make_source(self.kb, str(cases))
        if diagnoses is not None:
            self.source = restrict_source(self.source, set(self.candidates), self.diagnosis_matcher)
        kind = world_model or ("knowledge" if self.source.generated else "lookup")
        self.world_model = self._make_world_model(kind, dict(world_model_options or {}))
        self.judge: Any = None
        if judge == "llm":
            from rounds.envs.clinic.judge import LLMJudge

            options = dict(judge_options or {})
            if "model" not in options or "base_url" not in options:
                raise ValueError("judge='llm' needs judge_options with 'model' and 'base_url'")
            self.judge = LLMJudge(self.diagnosis_matcher, **options)
        elif judge != "alias":
            raise ValueError(f"unknown judge {judge!r}; choose alias or llm")
        self.patient: ClinicCase | None = None
        self.posterior: Posterior | None = None
        self.reference: list[str] = []
        self.ordered: list[str] = []
        self.exam_turns = 0
        self.hits = 0
        self.total_cost = 0.0
        self.diagnosis: str | None = None
        self._record_by_exam: dict[str, str] = {}
        self._record_names = ExamNameTable()
        self._results: dict[str, str] = {}

    def _candidates(self, diagnoses: Sequence[str] | None) -> list[str]:
        if diagnoses is None:
            return [d.id for d in self.kb.diseases]
        if isinstance(diagnoses, str) or not diagnoses:
            raise ValueError("diagnoses must be a non-empty list of disease ids")
        unknown = [d for d in diagnoses if d not in self.kb.disease_index]
        if unknown:
            hints = {d: difflib.get_close_matches(d, self.kb.disease_index, n=2) for d in unknown}
            named = "; ".join(
                f"{d!r}" + (f" (did you mean {', '.join(h)}?)" if h else "")
                for d, h in hints.items()
            )
            raise ValueError(
                f"unknown diagnoses {named}: use the knowledge base's disease ids "
                "(the `id:` entries of rounds/envs/clinic/knowledge/diseases.yaml)"
            )
        return list(dict.fromkeys(diagnoses))

    def _make_world_model(self, kind: str, options: dict[str, Any]) -> WorldModel:
        if kind == "knowledge":
            if not self.source.generated:
                raise ValueError(
                    "world_model='knowledge' needs generated cases; use 'lookup' or 'llm' with a case file"
                )
            if options:
                raise ValueError(
                    f"the knowledge world model takes no options, got {sorted(options)}"
                )
            return KnowledgeWorldModel(self.kb)
        if kind == "lookup":
            return LookupWorldModel()
        if kind == "llm":
            from rounds.envs.clinic.llm_world_model import LLMWorldModel

            return LLMWorldModel(**options)
        raise ValueError(f"unknown world_model {kind!r}; choose knowledge, lookup or llm")

    # ------------------------------------------------------------- the task

    @property
    def system_prompt(self) -> str:
        return (
            "You are a physician in an emergency department. You see a patient's triage note (age, sex, "
            "chief complaint and what the patient volunteered) and may order examinations one at a time; "
            "each result is reported back to you. Taking the full history (Medical history), measuring "
            "the vital signs (Vital signs) and each physical examination are ordered the same way, one "
            "turn each. When you have "
            "enough information, commit to one final diagnosis. You have at most "
            f"{self.max_turns} turns, and your last turn must be the diagnosis."
            + self._candidates_sentence()
            + (self._choice_instructions() if self.action_mode == "choice" else self._formats())
        )

    def _candidates_sentence(self) -> str:
        if len(self.candidates) == len(self.kb.diseases):
            return ""
        names = ", ".join(self.kb.disease(d).name for d in self.candidates)
        return f" The diagnosis is one of: {names}."

    def _choice_instructions(self) -> str:
        return (
            "\n\nEach observation ends with a numbered list of commands (the history, the vital "
            "signs and a final diagnosis for each candidate). Reply with the number of one "
            "command; another examination may be written as 'exam: <name>'."
        )

    def _formats(self) -> str:
        exams = ", ".join(exam.name for exam in self.kb.exams.values())
        return (
            "\n\nEach turn, reply in one of these formats.\n"
            "To order an examination:\n"
            "Current diagnosis: <your working diagnosis>\n"
            "Based on the patient's initial presentation, the following investigation(s) should be performed: "
            "<one examination>\nReason: <why>\n\n"
            "To give the final diagnosis:\n"
            "The available information is sufficient to make a diagnosis.\n"
            "Diagnosis: <one diagnosis>\nReason: <why>\n\n"
            "You may instead write 'exam: <name>' or 'diagnosis: <name>', or call the tools order_exam and "
            "diagnose. Order one examination per turn."
            + (f" Examinations available: {exams}." if self.list_exams else "")
        )

    @property
    def tools(self) -> list[dict[str, Any]]:
        return [dict(tool) for tool in TOOLS]

    def task_ids(self, split: str | None = None) -> Sequence[str]:
        return self.source.task_ids(split or self.split)

    def diagnosis_commands(self) -> list[str]:
        """``diagnosis: <name>`` for each candidate diagnosis, in the candidates' order."""
        return [f"diagnosis: {self.kb.disease(d).name}" for d in self.candidates]

    def admissible_commands(self) -> list[str]:
        """Every catalogue exam, then every candidate diagnosis."""
        exams = [f"exam: {exam.name}" for exam in self.kb.exams.values()]
        return exams + self.diagnosis_commands()

    def choice_commands(self) -> list[str]:
        """The history and the vital signs, then the candidate diagnoses: a short list whose
        numbers never change within a run (other exams may still be written as text)."""
        encounter = [f"exam: {self.kb.exams[e].name}" for e in self.kb.encounter_exams]
        return encounter + self.diagnosis_commands()

    # ------------------------------------------------------------- snapshots

    #: The attributes that make up an episode's state (knowledge base, matchers, case source
    #: and world model are shared and read-only).
    _EPISODE_STATE = (
        "patient",
        "ordered",
        "exam_turns",
        "hits",
        "total_cost",
        "diagnosis",
        "reference",
        "posterior",
        "move",
        "exams_given",
        "_results",
        "_record_by_exam",
        "_record_names",
    )

    def snapshot(self) -> dict[str, Any]:
        """An exact copy of the episode's state; :meth:`restore` it to replay byte for byte."""
        return snapshot_state(self, self._EPISODE_STATE, shared=[self.kb])

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Return to a :meth:`snapshot` (of this env or one built with the same arguments)."""
        restore_state(self, snapshot, self._EPISODE_STATE, shared=[self.kb])

    def scripted_policies(self) -> dict[str, ScriptedPolicy]:
        from rounds.envs.clinic.baselines import bayes_policy, random_policy, reference_policy

        return {"reference": reference_policy, "bayes": bayes_policy, "random": random_policy}

    # ------------------------------------------------------------- hooks

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        record, case = self.source.get(task_id)
        self.patient = ClinicCase(record=record, case=case)
        self.ordered, self.exam_turns, self.hits, self.total_cost = [], 0, 0, 0.0
        self.diagnosis = None
        self._results = {}
        self._index_record(record)
        if case is not None:
            self.reference = self.kb.workup(case.diagnosis, case.sex)
        else:
            self.reference = list(
                dict.fromkeys(self._exam_key(name) for name in record.recommended_exam_names)
            )
        self.posterior = None
        if case is not None and isinstance(self.world_model, KnowledgeWorldModel):
            self.posterior = Posterior(self.kb, self.candidates)
            self.posterior.observe_all(case.observations())
        observation = record.case_summary
        self.move = None
        if self.single_step:
            observation += self._given_history(task_id)
        return observation, {"answer": record.final_diagnosis, **self._posterior_info()}

    def _given_history(self, task_id: str) -> str:
        """Single-step: run the first k reference exams (k fixed by the task) and show them.

        k is uniform over 0..len(reference): with every reference exam done, the
        right move is the diagnosis; otherwise it is one of the remaining exams.
        """
        assert self.patient is not None
        record = self.patient.record
        names = (
            [self.kb.exams[e].name for e in self.reference]
            if self.patient.case is not None
            else list(dict.fromkeys(record.recommended_exam_names))
        )
        rng = np.random.default_rng(stable_seed("single-step", task_id))
        self.exams_given = int(rng.integers(0, len(names) + 1))
        # The paper's case summary holds the history and the vital signs: given, as done.
        encounter = [
            self.kb.exams[e].name
            for e in self.kb.encounter_exams
            if self.patient.case is not None
            or self.kb.exams[e].name in record.key_pertinent_results_dict
        ]
        lines = []
        for name in [*encounter, *names[: self.exams_given]]:
            request, _ = self._resolve_request(name) or (
                ExamRequest(
                    None, name, name if name in record.key_pertinent_results_dict else None
                ),
                "",
            )
            outcome = self.world_model.examine(self.patient, request)
            key = self._exam_key(name)
            self._results[key] = outcome.text
            self.ordered.append(key)
            self.patient.history.append((request.name, outcome.text))
            if self.posterior is not None:
                self.posterior.observe_all(outcome.observations)
            lines.append(f"Exam name:\n{request.name}\nExam results:\n{outcome.text}")
        done = (
            "\n\nExaminations already done:\n" + "\n\n".join(lines)
            if lines
            else "\n\nNo examinations have been done yet."
        )
        return (
            done + "\n\nMake one move: order the single next examination, or give the final "
            "diagnosis if the information is sufficient."
        )

    def _index_record(self, record: CaseRecord) -> None:
        self._record_by_exam = {}
        self._record_names = ExamNameTable()
        for name in record.key_pertinent_results_dict:
            exam_id, _ = self.exam_matcher.resolve(name)
            if exam_id is not None:
                self._record_by_exam.setdefault(exam_id, name)
            self._record_names.add(name, name)

    def _exam_key(self, name: str) -> str:
        exam_id, _ = self.exam_matcher.resolve(name)
        return exam_id if exam_id is not None else f"record:{normalise(name)}"

    def _posterior_info(self) -> dict[str, Any]:
        if self.posterior is None:
            return {}
        return {
            "posterior_entropy": self.posterior.entropy,
            "posterior_top": [[self.kb.disease(d).name, p] for d, p in self.posterior.top(3)],
        }

    def _act(self, text: str) -> StepResult:
        action = parse_action(text)
        if action.kind == "diagnose":
            self.diagnosis = action.name
            resolved = self.diagnosis_matcher.resolve(action.name)
            observation = (
                f"Final diagnosis recorded: {excerpt(action.name, 200)}. The consultation is over."
            )
            uncommitted = self.diagnosis_matcher.commitment(action.name)
            if uncommitted is not None:
                observation += f"\n\nNote: {uncommitted}"
            return StepResult(
                observation,
                terminated=True,
                info={
                    "answer": self._answer(),
                    # the diagnosis as the knowledge base names it (for answer-level statistics)
                    "final_answer": resolved[0] if len(resolved) == 1 else normalise(action.name),
                    **self._posterior_info(),
                },
            )
        return self._order(action)

    def _answer(self) -> str:
        assert self.patient is not None
        return self.patient.record.final_diagnosis

    def _resolve_request(self, name: str) -> tuple[ExamRequest, str] | None:
        exam_id, found = self.exam_matcher.resolve(name)
        note = ""
        if len(found) > 1:
            first = self.kb.exams[found[0]].name
            note = f"You asked for several exams; only the first, {first}, was done. Order one exam per turn."
        if exam_id is not None:
            request = ExamRequest(
                exam_id, self.kb.exams[exam_id].name, self._record_by_exam.get(exam_id)
            )
            return request, note
        match = self._record_names.lookup(name)
        if (
            match is not None
            and len(match) == 1
            and not isinstance(self.world_model, KnowledgeWorldModel)
        ):
            return ExamRequest(None, match[0], match[0]), note
        return None

    def _order(self, action: ClinicAction) -> StepResult:
        assert self.patient is not None
        resolved = self._resolve_request(action.name)
        if resolved is None:
            examples = ", ".join(e.name for e in list(self.kb.exams.values())[:6])
            raise InvalidAction(
                f"{excerpt(action.name)} is not available at this facility. Order an examination from the "
                f"catalogue (e.g. {examples}; the system prompt lists them all), or give your diagnosis."
            )
        request, note = resolved
        note = " ".join(n for n in (action.note, note) if n)
        key = (
            request.exam_id if request.exam_id is not None else f"record:{normalise(request.name)}"
        )
        components: dict[str, float] = {}
        if self.single_step:
            hit = key in self.reference and key not in self._results
            self.move = "hit" if hit else "miss"
            return StepResult(
                f"Next examination recorded: {request.name}. The single-step evaluation is over.",
                terminated=True,
                info={"answer": self._answer(), **self._posterior_info()},
            )
        # A hit is a first order of an exam the case has; a repeat is never a hit. The history
        # and the vital signs are no tests: they count in neither the hit ratio nor exam F1.
        if key not in self.kb.encounter_exams:
            self.exam_turns += 1
            if key not in self._results and (
                key in self.reference or request.record_name is not None
            ):
                self.hits += 1
        if key in self._results:
            text = self._results[key]
            components["repeat_penalty"] = REPEAT_PENALTY
            note = " ".join(
                n for n in (note, "This exam was already done; the result is unchanged.") if n
            )
        else:
            outcome = self.world_model.examine(self.patient, request)
            text = outcome.text
            self._results[key] = text
            self.ordered.append(key)
            self.patient.history.append((request.name, text))
            if request.exam_id is not None:
                cost = self.kb.exams[request.exam_id].cost
                self.total_cost += cost
                components["cost"] = -cost
            if self.posterior is not None:
                before = self.posterior.entropy
                self.posterior.observe_all(outcome.observations)
                components["info_gain"] = before - self.posterior.entropy
        observation = f"Exam name:\n{request.name}\nExam results:\n{text}"
        if note:
            observation += f"\n\nNote: {note}"
        if self.turn == self.max_turns - 1:
            observation += (
                "\n\nYou have one turn left: your next reply must be your final diagnosis."
            )
        return StepResult(
            observation, components, info={"answer": self._answer(), **self._posterior_info()}
        )

    def _judge_diagnosis(self) -> bool:
        assert self.patient is not None
        record = self.patient.record
        truth = (
            self.patient.case.diagnosis if self.patient.case is not None else record.final_diagnosis
        )
        if self.diagnosis is None:
            return False
        if self.judge is not None:
            return bool(self.judge.same(self.diagnosis, truth, record.final_diagnosis))
        return bool(self.diagnosis_matcher.same(self.diagnosis, truth))

    def _finish_single_step(self) -> EpisodeEnd:
        """One move scored as the paper's single-turn evaluation: exam hit or diagnosis accuracy."""
        metrics = {
            "exams_given": float(self.exams_given),
            "diagnosis_expected": float(self.exams_given == len(self.reference)),
        }
        correct = False
        if self.move in ("hit", "miss"):
            correct = self.move == "hit"
            metrics["hit_ratio"] = float(correct)
        elif self.diagnosis is not None:
            correct = self._judge_diagnosis()
            metrics["diagnosis_correct"] = float(correct)
        metrics["success"] = float(correct)
        metrics["diagnosis_given"] = float(self.diagnosis is not None)
        return EpisodeEnd(
            components={
                "outcome": float(correct),
                "completion": COMPLETION_BONUS * float(self.diagnosis is not None),
                "exam_f1": 0.0,
            },
            metrics=metrics,
        )

    def _finish(self, terminated: bool) -> EpisodeEnd:
        assert self.patient is not None
        if self.single_step:
            return self._finish_single_step()
        record = self.patient.record
        given = self.diagnosis is not None
        correct = self._judge_diagnosis()
        ordered = set(self.ordered) - set(self.kb.encounter_exams)
        reference = set(self.reference)
        overlap = len(ordered & reference)
        if not ordered and not reference:
            precision = recall = 1.0
        else:
            precision = overlap / len(ordered) if ordered else 0.0
            recall = overlap / len(reference) if reference else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        metrics = {
            "success": float(correct),
            "diagnosis_correct": float(correct),
            "diagnosis_given": float(given),
            "exam_precision": precision,
            "exam_recall": recall,
            "exam_f1": f1,
            "exams_ordered": float(len(ordered)),
            "history_taken": float(
                any(self.kb.exams[e].kind == "history" for e in set(self.ordered) - ordered)
            ),
            "total_cost": self.total_cost,
        }
        if self.exam_turns:
            metrics["hit_ratio"] = self.hits / self.exam_turns
        if self.posterior is not None and self.patient.case is not None:
            metrics["final_entropy"] = self.posterior.entropy
            metrics["truth_probability"] = self.posterior.probability(self.patient.case.diagnosis)
        from rounds.envs.rubric.clinical import grade_diagnostic_episode

        rubric = grade_diagnostic_episode(
            self.kb, record, self.patient.case, self.patient.history, self.diagnosis
        )
        if rubric is not None:
            metrics["rubric_score"] = rubric
        return EpisodeEnd(
            components={
                "outcome": float(correct),
                "completion": COMPLETION_BONUS * float(given),
                "exam_f1": EXAM_F1_FACTOR * f1,
                "rubric": rubric or 0.0,
            },
            metrics=metrics,
        )

    def _invalid_hint(self) -> str:
        return FORMAT_HELP

    def _truncation_message(self) -> str:
        return f"The turn limit ({self.max_turns}) is reached without a final diagnosis."

    def close(self) -> None:
        self.world_model.close()
        if self.judge is not None:
            self.judge.close()
        super().close()
