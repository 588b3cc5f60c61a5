"""The case model: sampling patients from the knowledge base, and case banks.

A generated :class:`Case` is a diagnosis, its history (every symptom and
history item as a full history records it, and which symptoms the patient
volunteered at triage) and one latent physiological state (:mod:`.physiology`),
all drawn from the case's id. The presentation is the triage note (chief
complaint, age, sex and the symptoms the patient volunteered); the full history
and the vital signs are exams (``history``, ``vitals``) reported from the same
case, so they never contradict it;
every exam result is computed from that state (with the case's fixed assay
noise), so results agree with each other and a result is the same whenever and
however often it is asked for. :func:`to_record` writes a case in DiagBench's
field layout, and :func:`load_records` reads a DiagBench JSON or JSONL file,
so an external bank drops in beside the generated one.
"""

from __future__ import annotations

import functools
import json
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rounds.envs.clinic.knowledge import (
    FLAGS,
    HISTORY_REPORTS,
    NOT_VOLUNTEERED,
    SYMPTOM_REPORTS,
    CategoricalFeature,
    FindingFeature,
    KnowledgeBase,
    NumericFeature,
    Sex,
)
from rounds.envs.clinic.physiology import DERIVATIONS, Latent, Measurer, rhythm_text

#: Bumped whenever generation changes, so bank ids never silently name other cases.
BANK_VERSION = "v1"
BANK_SIZES = {"train": 800, "validation": 200, "test": 200}
#: Re-draws of a case's values (never its levels) until its diagnosis' criteria hold.
CRITERIA_TRIES = 60


def stable_seed(*parts: object) -> int:
    """A 32-bit seed from ``parts`` that is the same in every process."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8"))


@dataclass(frozen=True)
class Case:
    """A generated patient: the diagnosis, the presentation, and one latent physiological state."""

    note_id: str
    diagnosis: str
    age: int
    age_band: str
    sex: Sex
    complaint: str
    symptoms: dict[str, str]
    """Each symptom as the full history records it: ``present``, ``denied`` or ``unmentioned``
    (the complaint's own symptoms and those of the other sex are not listed)."""
    history: dict[str, str]
    state: dict[str, Latent]
    """Every latent variable's level and value; every result is computed from it."""
    noise: dict[str, tuple[float, float]]
    """Fixed random draws of each derived value (assay noise, compensation)."""
    volunteered: tuple[str, ...] = ()
    """The present symptoms the patient volunteered at triage (the rest are elicited)."""

    def observations(self) -> dict[str, str]:
        """What the triage note tells, keyed as in the knowledge base: demographics, the
        complaint and each symptom ``volunteered`` or ``not_volunteered``."""
        obs = {"age_band": self.age_band, "sex": self.sex, "complaint": self.complaint}
        obs.update(
            {
                f"symptoms.{k}": "volunteered" if k in self.volunteered else NOT_VOLUNTEERED
                for k in self.symptoms
            }
        )
        return obs

    def history_observations(self) -> dict[str, str]:
        """What the full history tells: every symptom's and history item's report."""
        obs = {
            f"symptoms.{k}": "volunteered" if k in self.volunteered else v
            for k, v in self.symptoms.items()
        }
        obs.update({f"history.{k}": v for k, v in self.history.items()})
        return obs


def _draw(table_cumulative: np.ndarray, u: float) -> int:
    return int(
        min(
            np.searchsorted(table_cumulative, u * table_cumulative[-1], side="right"),
            len(table_cumulative) - 1,
        )
    )


def sample_value(
    feature: NumericFeature,
    level: str,
    sex: Sex,
    rng: np.random.Generator,
    within: tuple[float | None, float | None] | None = None,
    bounds: tuple[float, float] | None = None,
) -> float:
    """A value of ``feature`` inside ``level``'s range (and ``within``), on the feature's grid.

    Normal values follow a normal distribution centred in the reference range
    (standard deviation a sixth of its width), as healthy people cluster around
    the middle; wide abnormal ranges (a factor of 4 or more, e.g. troponin
    101-10000 ng/L) are sampled log-uniformly; mildly low or high values are
    likeliest next to the reference limit; other ranges are sampled uniformly.
    """
    low, high = bounds if bounds is not None else feature.level_bounds(sex)[level]
    if within is not None:
        inner_low = low if within[0] is None else max(low, within[0])
        inner_high = high if within[1] is None else min(high, within[1])
        if inner_low <= inner_high:
            low, high = inner_low, inner_high
    step = feature.step
    if level == "normal" and high > low:
        ref_low, ref_high = feature.reference(sex)
        value = rng.normal((ref_low + ref_high) / 2, (ref_high - ref_low) / 6)
    elif low > 0 and high / low >= 4:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    elif level in ("low", "high"):
        # Mildly abnormal values are the common ones: a triangular density that is
        # highest at the reference limit and falls to zero at the level's far end.
        t = 1.0 - math.sqrt(1.0 - rng.uniform())
        value = low + t * (high - low) if level == "high" else high - t * (high - low)
    else:
        value = rng.uniform(low, high)
    value = round(round(value / step) * step, feature.decimals)
    return float(min(max(value, low), high))


def format_value(feature: NumericFeature, value: float) -> str:
    return f"{value:.{feature.decimals}f}"


def _age(kb: KnowledgeBase, disease_id: str, band: str, rng: np.random.Generator) -> int:
    low, high = kb.presentation.age_bands[band]
    age_range = kb.disease(disease_id).age_range
    if age_range is not None:
        low, high = max(low, age_range[0]), min(high, age_range[1])
    return int(rng.integers(low, high + 1))


def sample_case(kb: KnowledgeBase, note_id: str, *, disease_id: str | None = None) -> Case:
    """Sample one patient; everything follows from ``note_id`` (and ``disease_id`` if given)."""
    rng = np.random.default_rng(stable_seed(BANK_VERSION, note_id))
    if disease_id is None:
        d = _draw(np.cumsum(kb.prior), float(rng.random()))
    else:
        d = kb.disease_index[disease_id]
    disease = kb.diseases[d]
    p = kb.presentation

    def level_of(key: str, complaint: str | None = None) -> str:
        table = kb.table(key, complaint)
        return table.levels[_draw(table.cumulative[d], float(rng.random()))]

    age_band = level_of("age_band")
    age = _age(kb, disease.id, age_band, rng)
    sex: Sex = "female" if level_of("sex") == "female" else "male"
    complaint = level_of("complaint")
    own = set(p.complaint_symptoms.get(complaint, ()))
    reported = _draw_reports(
        kb.report_cumulative("symptoms", complaint)[:, d, :], SYMPTOM_REPORTS, rng
    )
    asked = [
        (name, level)
        for (name, item), level in zip(p.symptoms.items(), reported, strict=True)
        if name not in own and item.sex in (None, sex)
    ]
    # A volunteered symptom is one the history records as present.
    symptoms = {name: "present" if level == "volunteered" else level for name, level in asked}
    volunteered = tuple(name for name, level in asked if level == "volunteered")
    history = dict(
        zip(
            p.history,
            _draw_reports(kb.report_cumulative("history", None)[:, d, :], HISTORY_REPORTS, rng),
            strict=True,
        )
    )
    state, noise = sample_state(kb, disease.id, sex, rng)
    return Case(
        note_id,
        disease.id,
        age,
        age_band,
        sex,
        complaint,
        symptoms,
        history,
        state,
        noise,
        volunteered,
    )


def _draw_reports(
    cumulative: np.ndarray, levels: tuple[str, ...], rng: np.random.Generator
) -> list[str]:
    """One report level per item from its ``(items, levels)`` cumulative probabilities."""
    u = rng.random(len(cumulative)) * cumulative[:, -1]
    drawn = np.minimum((cumulative <= u[:, None]).sum(axis=1), len(levels) - 1)
    return [levels[int(i)] for i in drawn]


def sample_state(
    kb: KnowledgeBase, disease_id: str, sex: Sex, rng: np.random.Generator
) -> tuple[dict[str, Latent], dict[str, tuple[float, float]]]:
    """One latent physiological state of a patient with ``disease_id``, and its noise draws.

    Levels are drawn from the diagnosis' tables (so the exact posterior holds);
    values within the levels are re-drawn until the diagnosis' criteria hold for
    the reported values (DKA's pH, HHS' osmolality).
    """
    d = kb.disease_index[disease_id]
    disease = kb.diseases[d]
    cumulative = kb.latent_cumulative[:, d, :]
    totals = cumulative[np.arange(len(kb.latent_keys)), kb.latent_level_counts - 1]
    u = rng.random(len(kb.latent_keys)) * totals
    drawn = np.minimum((cumulative <= u[:, None]).sum(axis=1), kb.latent_level_counts - 1)
    levels = {
        key: kb.tables[key].levels[int(i)] for key, i in zip(kb.latent_keys, drawn, strict=True)
    }
    derived_criteria = {
        k: v
        for k, v in disease.criteria.items()
        if (k not in kb.tables or k in kb.derived_keys) and not isinstance(v, list)
    }
    state: dict[str, Latent] = {}
    noise: dict[str, tuple[float, float]] = {}
    for _ in range(CRITERIA_TRIES):
        state = {}
        for key in kb.latent_keys:
            feature = kb.features[key]
            criterion = disease.criteria.get(key)
            value = (
                sample_value(
                    feature,
                    levels[key],
                    sex,
                    rng,
                    None if isinstance(criterion, list) else criterion,
                    kb.level_bounds(key, sex)[levels[key]],
                )
                if isinstance(feature, NumericFeature)
                else None
            )
            state[key] = Latent(levels[key], value)
        draws = rng.standard_normal(len(DERIVATIONS))
        uniforms = rng.random(len(DERIVATIONS))
        noise = {
            key: (float(z), float(u))
            for key, z, u in zip(DERIVATIONS, draws, uniforms, strict=True)
        }
        if not derived_criteria:
            break
        measurer = _measurer(kb, state, noise)
        if all(_meets(measurer.value(k), bounds) for k, bounds in derived_criteria.items()):
            break
    return state, noise


def _meets(value: float, bounds: tuple[float | None, float | None]) -> bool:
    return (bounds[0] is None or value >= bounds[0]) and (bounds[1] is None or value <= bounds[1])


def _measurer(
    kb: KnowledgeBase, state: dict[str, Latent], noise: dict[str, tuple[float, float]]
) -> Measurer:
    def round_to(key: str, value: float) -> float:
        feature = kb.features.get(key)
        if not isinstance(feature, NumericFeature):
            return value
        low, high = feature.range
        return float(round(min(max(value, low), high), feature.decimals))

    return Measurer(state, lambda key: noise.get(key, (0.0, 0.5)), round_to)


def measurer(kb: KnowledgeBase, case: Case) -> Measurer:
    """The reported values of ``case``'s derived features."""
    return _measurer(kb, case.state, case.noise)


def vital_signs(kb: KnowledgeBase, case: Case) -> dict[str, tuple[str, float]]:
    """Each vital sign's level and value (what the ``vitals`` exam reports)."""
    values = {}
    for name in kb.presentation.vitals:
        (result,) = feature_results(kb, case, [f"vitals.{name}"])
        assert result.value is not None
        values[name] = (result.level, result.value)
    return values


# ---------------------------------------------------------------- exam results


@dataclass(frozen=True)
class FeatureResult:
    """One reported feature: its level and, for numeric features, its value."""

    key: str
    level: str
    value: float | None = None


def exam_applies(kb: KnowledgeBase, case: Case, exam_id: str) -> bool:
    """False for an exam of the other sex (a pregnancy test or transvaginal ultrasound in a man)."""
    sex = kb.exams[exam_id].sex
    return sex is None or sex == case.sex


def feature_results(kb: KnowledgeBase, case: Case, keys: Sequence[str]) -> list[FeatureResult]:
    """The reported values of features ``keys``, computed from the case's latent state."""
    results = []
    values = measurer(kb, case)
    for key in keys:
        feature = kb.features[key]
        if isinstance(feature, NumericFeature) and feature.derived:
            value = values.value(key)
            results.append(FeatureResult(key, feature.level_of(value, case.sex), value))
        else:
            latent = case.state[key]
            results.append(FeatureResult(key, latent.level, latent.value))
    return results


def exam_result(kb: KnowledgeBase, case: Case, exam_id: str) -> list[FeatureResult]:
    """The results of ``exam_id`` for ``case``: the same on every call, in any order (none for
    the history, whose report is :func:`render_history`)."""
    if not exam_applies(kb, case, exam_id) or kb.exams[exam_id].kind == "history":
        return []
    keys = [k for k in kb.exam_display[exam_id] if not getattr(kb.features[k], "hidden", False)]
    return feature_results(kb, case, keys)


def exam_observations(kb: KnowledgeBase, case: Case, exam_id: str) -> dict[str, str]:
    """The latent levels ``exam_id`` reveals to the posterior (none for an exam that does not apply)."""
    if not exam_applies(kb, case, exam_id):
        return {}
    if kb.exams[exam_id].kind == "history":
        return case.history_observations()
    return {key: case.state[key].level for key in kb.exam_features[exam_id]}


def exam_report(kb: KnowledgeBase, case: Case, exam_id: str) -> str:
    """The report of ``exam_id`` for ``case``: a lab or imaging report, or the full history."""
    if kb.exams[exam_id].kind == "history":
        return render_history(kb, case)
    return render_result(kb, exam_id, exam_result(kb, case, exam_id), case.sex)


def render_result(
    kb: KnowledgeBase, exam_id: str, results: Sequence[FeatureResult], sex: Sex
) -> str:
    """A result formatted like a lab or imaging report."""
    exam = kb.exams[exam_id]
    if exam.sex is not None and exam.sex != sex:
        return f"Not applicable: {exam.name} is not performed in a {sex} patient."
    lines: list[str] = []
    findings: list[str] = []
    rate = next((r.value for r in results if r.key == "ecg.rate"), None)
    for result in results:
        feature = kb.features[result.key]
        if isinstance(feature, NumericFeature):
            assert result.value is not None
            ref_low, ref_high = feature.reference(sex)
            unit = f" {feature.unit}" if feature.unit else ""
            flag = FLAGS[result.level]
            flag_text = f" [{flag}]" if flag else ""
            reference = f"{format_value(feature, ref_low)}-{format_value(feature, ref_high)}"
            lines.append(
                f"{feature.name}: {format_value(feature, result.value)}{unit}{flag_text} (reference {reference})"
            )
        elif isinstance(feature, CategoricalFeature):
            if feature.rate_text and rate is not None:
                lines.append(f"{feature.name}: {rhythm_text(result.level, rate)}")
            else:
                lines.append(f"{feature.name}: {feature.states[result.level]}")
        elif isinstance(feature, FindingFeature) and result.level == "present":
            findings.append(feature.finding)
    has_findings = any(isinstance(kb.features[r.key], FindingFeature) for r in results)
    if findings:
        lines.append("Findings: " + ". ".join(findings) + ".")
    elif has_findings:
        lines.append(exam.normal or "No abnormal findings.")
    return "\n".join(lines)


# ---------------------------------------------------------------- case summary


def _join(items: list[str], conjunction: str = "and") -> str:
    if len(items) <= 2:
        return f" {conjunction} ".join(items)
    return ", ".join(items[:-1]) + f", {conjunction} " + items[-1]


def _article(age: int) -> str:
    return "An" if str(age).startswith("8") or age in (11, 18) else "A"


def render_summary(kb: KnowledgeBase, case: Case) -> str:
    """The initial presentation: a triage note in the layout of DiagAgent's initial inquiry.

    It holds the chief complaint, age, sex and the symptoms the patient
    volunteered. Associated symptoms, pertinent negatives and the past medical
    history are elicited by the ``history`` exam (:func:`render_history`); the
    vital signs are measured by the ``vitals`` exam, with the physical examination.
    """
    p = kb.presentation
    he = "She" if case.sex == "female" else "He"
    person = "woman" if case.sex == "female" else "man"
    complaint = p.complaints[case.complaint]
    # The complaint's own symptoms are not in case.symptoms: never reported twice, never denied.
    volunteered = [p.symptoms[s].text for s in case.volunteered]
    hpi = f"{_article(case.age)} {case.age}-year-old {person} presents with {complaint}."
    if volunteered:
        hpi += f" {he} also mentions {_join(volunteered)}."
    sex = "F" if case.sex == "female" else "M"
    return (
        f"- Patient Information: {case.age} y/o {sex}\n"
        f"- Chief Complaint: {complaint}\n"
        f"- History of Present Illness: {hpi}\n"
        "- Not yet done: the full history (order Medical history), the vital signs (order "
        "Vital signs) and the physical examination."
    )


def render_history(kb: KnowledgeBase, case: Case) -> str:
    """The full history (the ``history`` exam's report): every symptom the history records as
    present (the volunteered ones too) or denied, and the past medical history."""
    p = kb.presentation
    he = "She" if case.sex == "female" else "He"
    complaint = p.complaints[case.complaint]
    reported = [p.symptoms[s].text for s, v in case.symptoms.items() if v == "present"]
    denied = [p.symptoms[s].text for s, v in case.symptoms.items() if v == "denied"]
    hpi = f"Besides {complaint}, {he.lower()} reports {_join(reported)}." if reported else ""
    hpi = hpi or f"{he} reports no symptoms besides {complaint}."
    if denied:
        hpi += f" {he} denies {_join(denied, 'or')}."
    past = [p.history[h].text for h, v in case.history.items() if v == "present"]
    negatives = [p.history[h].text for h, v in case.history.items() if v == "denied"]
    pmh = (_join(past)[0].upper() + _join(past)[1:] + ".") if past else "None reported."
    if negatives:
        pmh += f" No history of {_join(negatives, 'or')}."
    return f"History of present illness: {hpi}\nPast medical history: {pmh}"


# ---------------------------------------------------------------- records and banks


class CaseRecord(BaseModel):
    """A case in DiagBench's field layout (extra fields are kept)."""

    model_config = ConfigDict(extra="allow")

    note_id: str
    case_summary: str
    final_diagnosis: str
    recommended_exam_names: list[str] = Field(default_factory=list)
    key_pertinent_results_dict: dict[str, str] = Field(default_factory=dict)
    split: str | None = None

    @field_validator("note_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("recommended_exam_names", mode="before")
    @classmethod
    def _names_as_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("key_pertinent_results_dict", mode="before")
    @classmethod
    def _results_as_dict(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        return value


def to_record(kb: KnowledgeBase, case: Case, split: str | None = None) -> CaseRecord:
    """The DiagBench-layout record of a generated case (results of its reference exams)."""
    workup = kb.workup(case.diagnosis, case.sex)
    return CaseRecord(
        note_id=case.note_id,
        case_summary=render_summary(kb, case),
        final_diagnosis=kb.disease(case.diagnosis).name,
        recommended_exam_names=[kb.exams[e].name for e in workup],
        # The full history and vital signs are results the record carries (DiagBench's own
        # summaries hold them), so lookup mode answers them too; they are not recommended exams.
        key_pertinent_results_dict={
            kb.exams[e].name: exam_report(kb, case, e) for e in [*workup, *kb.encounter_exams]
        },
        split=split,
        diagnosis_id=case.diagnosis,
    )


class IdRange(Sequence[str]):
    """The ids ``f"{prefix}{i:0{width}d}"`` for ``i`` in ``range(size)``, without storing them."""

    def __init__(self, prefix: str, size: int, width: int = 4) -> None:
        self.prefix, self.size, self.width = prefix, size, width

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(index)
        return f"{self.prefix}{index:0{self.width}d}"

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(self.size))


def bank_ids(split: str) -> IdRange:
    """Note ids of the built-in bank's ``split`` (``rounds-test-0000`` ...)."""
    return IdRange(f"rounds-{split}-", BANK_SIZES[split])


@functools.cache
def bank_case(kb: KnowledgeBase, note_id: str) -> Case:
    """A case of the built-in bank (or a generated one: any note id works)."""
    return sample_case(kb, note_id)


def load_records(path: str | Path) -> list[CaseRecord]:
    """Read a DiagBench-layout JSON (a list, or ``{"cases": [...]}``) or JSONL file.

    Raises:
        ValueError: the file is not such a file; the message names the record at fault.
    """
    file = Path(path)
    if not file.exists():
        raise ValueError(f"case file {file} does not exist")
    text = file.read_text(encoding="utf-8", errors="replace")
    raw: list[Any]
    if file.suffix == ".jsonl":
        raw = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    raw.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{file}:{number}: not JSON ({err})") from err
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{file}: not JSON ({err}); use .jsonl for one case per line") from err
        raw = data.get("cases", []) if isinstance(data, dict) else data
        if isinstance(data, dict) and "cases" not in data:
            raw = list(data.values()) if all(isinstance(v, dict) for v in data.values()) else []
    records = []
    for number, item in enumerate(raw, start=1):
        try:
            records.append(CaseRecord.model_validate(item))
        except ValidationError as err:
            problem = err.errors()[0]
            field = ".".join(str(x) for x in problem["loc"])
            raise ValueError(f"{file}: case {number}: {field}: {problem['msg']}") from err
    if not records:
        raise ValueError(f"{file}: no cases found")
    return records
