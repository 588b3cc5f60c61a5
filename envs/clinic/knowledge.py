"""The clinical knowledge base: diseases, examinations and presentation features.

Loaded from the YAML files in ``knowledge/`` and validated with pydantic, then
compiled into one table per feature, ``P(level | diagnosis)``, which is all the
case model, the exact posterior and the ``bayes`` agent need.

Every feature is one of three kinds:

- numeric (an analyte or vital sign): levels ``very_low``, ``low``, ``normal``,
  ``high``, ``very_high`` (those the ranges define), each a closed grid of values
  at the feature's precision;
- categorical: named states, each with its report text;
- a binary finding: states ``absent`` and ``present``.

Exam findings keep at least :data:`FINDING_FLOOR` probability on every level
that a patient without the disease can have (the feature's default
distribution), so no single ordinary result rules a diagnosis out (tests have
false positives and negatives). Levels the default never produces (critical
values, a positive pregnancy test, ventricular tachycardia) come only from the
diseases that name them, and a disease's ``criteria`` (its definition, e.g. DKA's
glucose above 250 mg/dL) exclude levels outside them. Demographics and the chief
complaint are used exactly.

Features are latent or derived. A latent feature has a table and is drawn once
per case (the case's physiological state); a ``derived`` feature is computed
from the state by :mod:`.physiology` (chloride from sodium, bicarbonate and the
anion gap; pH by Henderson-Hasselbalch) and ``reveals`` the latent variables it
depends on to the posterior.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rounds.storage import read_yaml

KNOWLEDGE_DIR = Path(__file__).with_name("knowledge")

#: Minimum probability of any level of an exam or presentation finding.
FINDING_FLOOR = 0.01
#: Minimum probability that a symptom or history item is present (or absent): rare
#: symptoms stay rare in unrelated diagnoses, so case summaries read naturally.
REPORT_FLOOR = 0.002

LEVEL_ORDER = ("very_low", "low", "normal", "high", "very_high")
#: A history item's report: recorded as present, denied, or not mentioned.
HISTORY_REPORTS = ("present", "denied", "unmentioned")
#: A symptom's report: volunteered at triage, present when asked (elicited), denied, not mentioned.
SYMPTOM_REPORTS = ("volunteered", "present", "denied", "unmentioned")
#: What the triage note tells of every symptom the patient did not volunteer.
NOT_VOLUNTEERED = "not_volunteered"
FLAGS = {"very_low": "LL", "low": "L", "normal": "", "high": "H", "very_high": "HH"}

Sex = Literal["female", "male"]


class NumericFeature(BaseModel):
    """A measured value with a reference range (an analyte, a vital sign)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    unit: str
    ref: tuple[float, float] | None = None
    ref_male: tuple[float, float] | None = None
    ref_female: tuple[float, float] | None = None
    range: tuple[float, float]
    very_low_below: float | None = None
    very_high_above: float | None = None
    decimals: int = 0
    default: dict[str, float] | None = None
    derived: bool = False
    """Computed from the latent state (:data:`.physiology.DERIVATIONS`), not drawn."""
    reveals: list[str] = Field(default_factory=list)
    """The latent variables a derived value tells the posterior."""
    hidden: bool = False
    """A latent variable no report shows directly (seen only through derived values)."""

    @model_validator(mode="after")
    def _check(self) -> NumericFeature:
        if self.ref is None and (self.ref_male is None or self.ref_female is None):
            raise ValueError(f"{self.name}: give ref, or both ref_male and ref_female")
        sexes: tuple[Sex, ...] = ("male", "female")
        for sex in sexes:
            low, high = self.reference(sex)
            if not self.range[0] <= low <= high <= self.range[1]:
                raise ValueError(f"{self.name}: reference {low}-{high} outside range {self.range}")
        return self

    def reference(self, sex: Sex) -> tuple[float, float]:
        """The normal range for a patient of ``sex``."""
        specific = self.ref_female if sex == "female" else self.ref_male
        reference = specific or self.ref
        assert reference is not None  # the validator requires ref or both sex-specific ranges
        return reference

    def level_of(self, value: float, sex: Sex) -> str:
        """The level whose interval holds ``value`` (values beyond the range take the outer level)."""
        bounds = self.level_bounds(sex)
        half = self.step / 2
        for level, (low, high) in bounds.items():
            if low - half <= value <= high + half:
                return level
        return next(iter(bounds)) if value < self.range[0] + half else list(bounds)[-1]

    @property
    def step(self) -> float:
        return 10.0 ** (-self.decimals)

    def level_bounds(self, sex: Sex) -> dict[str, tuple[float, float]]:
        """Each level's closed value interval for a patient of ``sex`` (empty levels omitted)."""
        step = self.step
        ref_low, ref_high = self.reference(sex)
        low_edge, high_edge = self.range
        bounds: dict[str, tuple[float, float]] = {}
        if self.very_low_below is not None:
            bounds["very_low"] = (low_edge, self.very_low_below - step)
            bounds["low"] = (self.very_low_below, ref_low - step)
        else:
            bounds["low"] = (low_edge, ref_low - step)
        bounds["normal"] = (ref_low, ref_high)
        if self.very_high_above is not None:
            bounds["high"] = (ref_high + step, self.very_high_above)
            bounds["very_high"] = (self.very_high_above + step, high_edge)
        else:
            bounds["high"] = (ref_high + step, high_edge)
        return {k: (round(a, 6), round(b, 6)) for k, (a, b) in bounds.items() if b >= a - 1e-9}

    def levels(self) -> tuple[str, ...]:
        """The levels this feature has (the same for both sexes)."""
        names = set(self.level_bounds("male")) | set(self.level_bounds("female"))
        return tuple(level for level in LEVEL_ORDER if level in names)


class CategoricalFeature(BaseModel):
    """A result with named states (a culture's organism, an ECG rhythm)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    states: dict[str, str]
    default: dict[str, float] | None = None
    hidden: bool = False
    """A latent variable no report shows directly."""
    rate_text: bool = False
    """The report text follows the heart rate (:func:`.physiology.rhythm_text`)."""

    def levels(self) -> tuple[str, ...]:
        return tuple(self.states)


class FindingFeature(BaseModel):
    """A finding that is present or absent (an imaging sign, a physical sign)."""

    model_config = ConfigDict(extra="forbid")

    finding: str
    rate: float = Field(ge=0.0, le=1.0)

    @property
    def name(self) -> str:
        return self.finding

    def levels(self) -> tuple[str, ...]:
        return ("absent", "present")


Feature = NumericFeature | CategoricalFeature | FindingFeature


class Exam(BaseModel):
    """An examination the agent can order."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal[
        "lab",
        "microbiology",
        "bedside",
        "procedure",
        "ecg",
        "imaging",
        "physical",
        "history",
        "vitals",
    ]
    """``history``: the full history (HPI, review of systems, past medical history), which
    reports the case's symptom and history items; ``vitals``: the presentation's vital
    signs. Neither has features of its own."""
    cost: float = Field(ge=0)
    synonyms: list[str] = Field(default_factory=list)
    features: dict[str, NumericFeature | CategoricalFeature | FindingFeature] = Field(
        default_factory=dict
    )
    includes: list[str] = Field(default_factory=list)
    normal: str | None = None
    sex: Sex | None = None
    """Only for patients of this sex (a pregnancy test, a transvaginal or scrotal ultrasound)."""


class Disease(BaseModel):
    """A diagnosis and how it conditions every feature of a case."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    source: str
    prevalence: float = Field(gt=0)
    age: dict[str, float]
    female: float = Field(ge=0.0, le=1.0)
    complaints: dict[str, float]
    findings: dict[str, float | dict[str, float]] = Field(default_factory=dict)
    workup: list[str]
    workup_female: list[str] = Field(default_factory=list)
    age_range: tuple[int, int] | None = None
    """Ages the diagnosis occurs at, within its age bands (no ectopic pregnancy at 64)."""
    criteria: dict[str, tuple[float | None, float | None] | list[str]] = Field(default_factory=dict)
    """The diagnosis' definition: each reported value's closed interval (None: unbounded),
    or the allowed states of a categorical result or finding."""
    definition: str | None = None
    """The source of ``criteria``, with the thresholds as it states them."""


class PresentationItem(BaseModel):
    """A symptom or history item: its text, and its rate where a diagnosis does not name it."""

    model_config = ConfigDict(extra="forbid")

    text: str
    rate: float | None = Field(default=None, ge=0.0, le=1.0)
    sex: Sex | None = None
    """Only asked of patients of this sex (menstrual and vaginal symptoms)."""


class Presentation(BaseModel):
    """Features of the initial presentation."""

    model_config = ConfigDict(extra="forbid")

    negative_report_rate: float = Field(ge=0.0, le=1.0)
    positive_report_rate: float = Field(ge=0.0, le=1.0)
    volunteer_rate: float = Field(ge=0.0, le=1.0)
    """The share of the symptoms a full history records that the patient volunteers at
    triage, before any question (the rest are elicited by taking the history)."""
    symptom_rate: float = Field(ge=0.0, le=1.0)
    history_rate: float = Field(ge=0.0, le=1.0)
    age_bands: dict[str, tuple[int, int]]
    complaints: dict[str, str]
    complaint_symptoms: dict[str, list[str]] = Field(default_factory=dict)
    pertinent_negative_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    pertinent_negatives: dict[str, list[str]] = Field(default_factory=dict)
    """Per complaint, the symptoms a clinician asks about and records as denied when absent."""
    """The symptoms each complaint is (never also reported, or denied, beside it)."""
    symptoms: dict[str, PresentationItem]
    history: dict[str, PresentationItem]
    vitals: dict[str, NumericFeature]

    @field_validator("symptoms", "history", mode="before")
    @classmethod
    def _text_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"text": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


def _normalise(
    dist: Mapping[str, float],
    levels: tuple[str, ...],
    what: str,
    floor: float,
    floored: np.ndarray | None = None,
) -> np.ndarray:
    """``dist`` as an array over ``levels``; levels marked in ``floored`` get at least ``floor``."""
    unknown = set(dist) - set(levels)
    if unknown:
        raise ValueError(f"{what}: unknown levels {sorted(unknown)}; levels are {list(levels)}")
    values: np.ndarray = np.array([float(dist.get(level, 0.0)) for level in levels])
    if (values < 0).any():
        raise ValueError(f"{what}: negative probability")
    total = values.sum()
    if not math.isclose(total, 1.0, abs_tol=0.02):
        raise ValueError(f"{what}: probabilities sum to {total:.3f}, not 1")
    values = values / total
    if floor > 0:
        mask = np.ones(len(levels), dtype=bool) if floored is None else floored
        floored_values: np.ndarray = np.where(mask, np.maximum(values, floor), values)
        values = floored_values / floored_values.sum()
    return values


def _is_derived(feature: Feature) -> bool:
    return isinstance(feature, NumericFeature) and feature.derived


Criterion = tuple[float | None, float | None] | list[str]


def _allowed_levels(
    feature: Feature, levels: tuple[str, ...], criterion: Criterion | None
) -> np.ndarray:
    """Which levels of ``feature`` meet a disease's ``criterion`` (an interval for either sex, or states)."""
    allowed = np.ones(len(levels), dtype=bool)
    if criterion is None:
        return allowed
    if isinstance(criterion, list):
        unknown = set(criterion) - set(levels)
        if unknown:
            raise ValueError(f"{feature.name}: criterion names unknown states {sorted(unknown)}")
        return np.array([level in criterion for level in levels])
    if not isinstance(feature, NumericFeature):
        raise ValueError(f"{feature.name}: give a list of allowed states, not an interval")
    low = -math.inf if criterion[0] is None else criterion[0]
    high = math.inf if criterion[1] is None else criterion[1]
    for i, level in enumerate(levels):
        ok = False
        sexes: tuple[Sex, ...] = ("male", "female")
        for sex in sexes:
            bounds = feature.level_bounds(sex)
            if level in bounds and bounds[level][0] <= high and bounds[level][1] >= low:
                ok = True
        allowed[i] = ok
    return allowed


def _default_distribution(feature: Feature) -> dict[str, float]:
    if isinstance(feature, FindingFeature):
        return {"absent": 1.0 - feature.rate, "present": feature.rate}
    if feature.default is not None:
        return dict(feature.default)
    if isinstance(feature, CategoricalFeature):
        first = feature.levels()[0]
        rest = feature.levels()[1:]
        return {first: 0.96, **{s: 0.04 / len(rest) for s in rest}} if rest else {first: 1.0}
    levels = feature.levels()
    # Reference ranges are central 95% intervals of healthy people.
    dist = {"normal": 0.95}
    tails = [lv for lv in ("low", "high") if lv in levels]
    for level in tails:
        dist[level] = 0.05 / len(tails)
    if not tails:
        dist["normal"] = 1.0
    return dist


class FeatureTable:
    """One feature's ``P(level | diagnosis)`` as a ``(diagnoses, levels)`` array, with its logs.

    ``groups`` name sets of levels that can be observed without telling them apart
    (a coarse observation): a symptom is ``not_volunteered`` at triage, which the
    history later refines to ``present``, ``denied`` or ``unmentioned``.
    """

    def __init__(
        self,
        key: str,
        feature: Feature | None,
        levels: tuple[str, ...],
        probs: np.ndarray,
        groups: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.key = key
        self.feature = feature
        self.levels = levels
        self.level_index = {level: i for i, level in enumerate(levels)}
        self.probs = probs
        self.cumulative = np.cumsum(probs, axis=1)
        self.log_probs: np.ndarray = _log(probs)
        self.groups: dict[str, tuple[str, ...]] = {level: (level,) for level in levels}
        for name, members in (groups or {}).items():
            if name in self.level_index or not set(members) <= set(levels):
                raise ValueError(f"{key}: group {name!r} must name a set of its levels {levels}")
            self.groups[name] = tuple(members)
        self._masks = {
            name: np.array([level in members for level in levels])
            for name, members in self.groups.items()
        }
        self._group_log_probs = {
            name: _log(probs[:, mask].sum(axis=1)) for name, mask in self._masks.items()
        }

    def log_probability(self, level: str) -> np.ndarray:
        """``log P(level | d)`` for every diagnosis; ``level`` may be a group of levels."""
        return self._group_log_probs[level]

    def refines(self, coarse: str, level: str) -> bool:
        """Whether observing ``level`` after ``coarse`` tells something new and agrees with it."""
        return level != coarse and set(self.groups[level]) < set(self.groups[coarse])

    def conditional(self, observed: str | None) -> np.ndarray:
        """``P(level | d, observed)`` as a ``(diagnoses, levels)`` array (``observed`` a level or
        group, None when nothing is known of the feature)."""
        if observed is None:
            return self.probs
        masked = np.where(self._masks[observed], self.probs, 0.0)
        total = masked.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            conditional: np.ndarray = np.where(total > 0, masked / total, 0.0)
        return conditional


def _log(values: np.ndarray) -> np.ndarray:
    """``log(values)`` with ``-inf`` where a value is 0."""
    logs: np.ndarray = np.log(
        values, where=values > 0, out=np.full_like(values, -np.inf, dtype=float)
    )
    return logs


class KnowledgeBase:
    """The validated knowledge base with one :class:`FeatureTable` per feature.

    Feature keys: ``"<exam>.<feature>"`` for exam features, ``"symptoms.<s>"``,
    ``"history.<h>"``, ``"vitals.<v>"``, and ``"complaint"``, ``"age_band"``, ``"sex"``.
    """

    def __init__(
        self,
        exams: dict[str, Exam],
        diseases: list[Disease],
        presentation: Presentation,
        broader_terms: dict[str, list[str]],
    ) -> None:
        self.exams = exams
        self.diseases = diseases
        self.presentation = presentation
        self.broader_terms = broader_terms
        self.disease_index = {d.id: i for i, d in enumerate(diseases)}
        if len(self.disease_index) != len(diseases):
            raise ValueError("duplicate disease ids")
        prevalence = np.array([d.prevalence for d in diseases], dtype=float)
        self.prior = prevalence / prevalence.sum()
        self.log_prior = np.log(self.prior)
        self.features: dict[str, Feature] = {}
        for exam_id, exam in exams.items():
            for feature_id, feature in exam.features.items():
                self.features[f"{exam_id}.{feature_id}"] = feature
        for vital_id, vital in presentation.vitals.items():
            self.features[f"vitals.{vital_id}"] = vital
        self.latent_keys = [k for k, f in self.features.items() if not _is_derived(f)]
        self.derived_keys = [k for k, f in self.features.items() if _is_derived(f)]
        self.encounter_exams = [e for e, x in exams.items() if x.kind in ("history", "vitals")]
        """The full history and the vital signs: part of every encounter, not tests a workup
        recommends (exam F1 and the hit ratio leave them out)."""
        self.exam_display: dict[str, list[str]] = {}
        self.exam_features: dict[str, list[str]] = {}
        """The latent variables each exam reveals (what the posterior observes)."""
        for exam_id, exam in exams.items():
            if exam.kind == "history":
                if exam.features or exam.includes:
                    raise ValueError(f"exam {exam_id!r}: a history reports no exam features")
                self.exam_display[exam_id] = []
                self.exam_features[exam_id] = [
                    *(f"symptoms.{s}" for s in presentation.symptoms),
                    *(f"history.{h}" for h in presentation.history),
                ]
                continue
            if exam.kind == "vitals":
                if exam.features or exam.includes:
                    raise ValueError(f"exam {exam_id!r}: the vital signs are presentation.vitals")
                self.exam_display[exam_id] = [f"vitals.{v}" for v in presentation.vitals]
            else:
                self.exam_display[exam_id] = self._features_of(exam_id, set())
            self.exam_features[exam_id] = self.revealed_by(self.exam_display[exam_id])
        self.vital_features = self.revealed_by([f"vitals.{v}" for v in presentation.vitals])
        self.tables: dict[str, FeatureTable] = {}
        self._compile()

    def revealed_by(self, keys: list[str]) -> list[str]:
        """The latent variables that reported features ``keys`` reveal, in order."""
        revealed: list[str] = []
        for key in keys:
            feature = self.features[key]
            targets = (
                feature.reveals
                if isinstance(feature, NumericFeature) and feature.derived
                else [key]
            )
            revealed += [t for t in targets if t not in revealed]
        return revealed

    # -------------------------------------------------------------- compile

    def _features_of(self, exam_id: str, seen: set[str]) -> list[str]:
        if exam_id not in self.exams:
            raise ValueError(f"unknown exam {exam_id!r}")
        if exam_id in seen:
            raise ValueError(f"exam {exam_id!r} includes itself")
        exam = self.exams[exam_id]
        keys = [f"{exam_id}.{f}" for f in exam.features]
        for included in exam.includes:
            keys += [k for k in self._features_of(included, seen | {exam_id}) if k not in keys]
        if not keys:
            raise ValueError(f"exam {exam_id!r} has no features")
        return keys

    def _compile(self) -> None:
        from rounds.envs.clinic.physiology import DERIVATIONS

        presentation = self.presentation
        n = len(self.diseases)
        for key in self.derived_keys:
            feature = self.features[key]
            if key not in DERIVATIONS:
                raise ValueError(f"derived feature {key!r} has no derivation in physiology.py")
            assert isinstance(feature, NumericFeature)
            unknown = [r for r in feature.reveals if r not in self.latent_keys]
            if unknown:
                raise ValueError(f"{key}: reveals unknown latent variables {unknown}")
        for complaint, symptoms in presentation.complaint_symptoms.items():
            if complaint not in presentation.complaints:
                raise ValueError(f"complaint_symptoms: unknown complaint {complaint!r}")
            if set(symptoms) - set(presentation.symptoms):
                raise ValueError(f"complaint_symptoms.{complaint}: unknown symptoms")
        for disease in self.diseases:
            for key in disease.findings:
                group, _, name = key.partition(".")
                if group in ("symptoms", "history"):
                    if name not in getattr(presentation, group):
                        raise ValueError(f"{disease.id}: unknown {group} item {name!r}")
                elif key not in self.features:
                    raise ValueError(f"{disease.id}: unknown feature {key!r}")
                elif key in self.derived_keys:
                    raise ValueError(
                        f"{disease.id}: {key} is derived from the latent state; give the latent "
                        f"variables it reveals instead ({self.features[key].reveals})"  # type: ignore[union-attr]
                    )
            for key in disease.criteria:
                if key not in self.features and key not in DERIVATIONS:
                    raise ValueError(f"{disease.id}: criterion on unknown value {key!r}")
            for exam_id in [*disease.workup, *disease.workup_female]:
                if exam_id not in self.exams:
                    raise ValueError(f"{disease.id}: unknown workup exam {exam_id!r}")
            if set(disease.complaints) - set(presentation.complaints):
                raise ValueError(
                    f"{disease.id}: unknown complaints {set(disease.complaints) - set(presentation.complaints)}"
                )
            if set(disease.age) - set(presentation.age_bands):
                raise ValueError(
                    f"{disease.id}: unknown age bands {set(disease.age) - set(presentation.age_bands)}"
                )
            if disease.age_range is not None:
                low, high = disease.age_range
                for band, p in disease.age.items():
                    band_low, band_high = presentation.age_bands[band]
                    if p > 0 and (band_high < low or band_low > high):
                        raise ValueError(
                            f"{disease.id}: age band {band} lies outside age_range {disease.age_range}"
                        )
        for terms in self.broader_terms.values():
            for disease_id in terms:
                if disease_id not in self.disease_index:
                    raise ValueError(f"broader term names unknown disease {disease_id!r}")

        # Latent exam and vital-sign variables. Levels a patient without the
        # disease never has (the default gives them 0) are not floored.
        for key in self.latent_keys:
            feature = self.features[key]
            levels = feature.levels()
            default = _default_distribution(feature)
            ordinary = np.array([default.get(level, 0.0) > 0 for level in levels])
            rows = []
            for disease in self.diseases:
                given = disease.findings.get(key)
                if given is None:
                    dist = default
                elif isinstance(given, dict):
                    dist = given
                elif len(levels) == 2 and not isinstance(feature, NumericFeature):
                    # A number gives the probability of the second (abnormal) state.
                    dist = {levels[0]: 1.0 - given, levels[1]: given}
                else:
                    raise ValueError(
                        f"{disease.id}.{key}: a number is only allowed for a two-state feature"
                    )
                _normalise(
                    dist, levels, f"{disease.id}: {key}", 0.0
                )  # validates the levels and sum
                allowed = _allowed_levels(feature, levels, disease.criteria.get(key))
                dist = {
                    lv: p for lv, p in dist.items() if lv not in levels or allowed[levels.index(lv)]
                }
                if not dist or sum(dist.values()) <= 0:
                    raise ValueError(f"{disease.id}: {key}: no level meets the disease's criteria")
                total = sum(dist.values())
                dist = {lv: p / total for lv, p in dist.items()}
                rows.append(
                    _normalise(
                        dist, levels, f"{disease.id}: {key}", FINDING_FLOOR, ordinary & allowed
                    )
                )
            self.tables[key] = FeatureTable(key, feature, levels, np.vstack(rows))

        # Symptoms and history: reported present, denied, or not mentioned. A
        # present item is mentioned with probability r+, an absent one denied with r-.
        q = presentation.negative_report_rate
        self.present_probability: dict[str, np.ndarray] = {}
        self._pertinent: dict[tuple[str, str], FeatureTable] = {}
        for group in ("symptoms", "history"):
            group_rate = (
                presentation.symptom_rate if group == "symptoms" else presentation.history_rate
            )
            items: dict[str, PresentationItem] = getattr(presentation, group)
            for name, item in items.items():
                key = f"{group}.{name}"
                background = item.rate if item.rate is not None else group_rate
                present = []
                for disease in self.diseases:
                    given = disease.findings.get(key, background)
                    if not isinstance(given, float | int):
                        raise ValueError(f"{disease.id}: {key} takes a probability")
                    present.append(min(max(float(given), REPORT_FLOOR), 1.0 - REPORT_FLOOR))
                self.present_probability[key] = np.array(present)
                self.tables[key] = self._report_table(key, q)
        for complaint, negatives in presentation.pertinent_negatives.items():
            if complaint not in presentation.complaints:
                raise ValueError(f"pertinent_negatives: unknown complaint {complaint!r}")
            for name in negatives:
                if name not in presentation.symptoms:
                    raise ValueError(f"pertinent_negatives.{complaint}: unknown symptom {name!r}")
                key = f"symptoms.{name}"
                self._pertinent[(key, complaint)] = self._report_table(
                    key, presentation.pertinent_negative_rate
                )

        complaints = tuple(presentation.complaints)
        self.tables["complaint"] = FeatureTable(
            "complaint",
            None,
            complaints,
            np.vstack(
                [
                    _normalise(d.complaints, complaints, f"{d.id}: complaints", 0.0)
                    for d in self.diseases
                ]
            ),
        )
        bands = tuple(presentation.age_bands)
        self.tables["age_band"] = FeatureTable(
            "age_band",
            None,
            bands,
            np.vstack([_normalise(d.age, bands, f"{d.id}: age", 0.0) for d in self.diseases]),
        )
        self.tables["sex"] = FeatureTable(
            "sex",
            None,
            ("female", "male"),
            np.array([[d.female, 1.0 - d.female] for d in self.diseases]),
        )
        assert all(t.probs.shape[0] == n for t in self.tables.values())
        # All latent variables' cumulative tables in one padded array, to draw a state at once.
        width = max(len(self.tables[k].levels) for k in self.latent_keys)
        stacked = np.ones((len(self.latent_keys), n, width))
        for i, key in enumerate(self.latent_keys):
            cumulative = self.tables[key].cumulative
            stacked[i, :, : cumulative.shape[1]] = cumulative
            stacked[i, :, cumulative.shape[1] :] = cumulative[:, -1:] + 1.0
        self.latent_cumulative = stacked
        self.latent_level_counts = np.array([len(self.tables[k].levels) for k in self.latent_keys])
        self._bounds: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
        self._reports: dict[tuple[str, str | None], np.ndarray] = {}

    def _report_table(self, key: str, denial_rate: float) -> FeatureTable:
        """``P(report | d)`` of a symptom or history item, as the full history records it.

        A present item is mentioned with probability ``positive_report_rate``; an
        absent one is denied with ``denial_rate`` (higher for the complaint's
        pertinent negatives, which a clinician asks about and records). A symptom
        the history records was ``volunteered`` at triage with probability
        ``volunteer_rate``, else it is ``present`` (elicited by asking); at triage
        every other symptom is seen only as the group ``not_volunteered``. History
        items (risk factors, past illnesses) are only elicited.
        """
        p = self.present_probability[key]
        r = self.presentation.positive_report_rate
        q = denial_rate
        denied, unmentioned = (1 - p) * q, p * (1 - r) + (1 - p) * (1 - q)
        if not key.startswith("symptoms."):
            rows = np.stack([p * r, denied, unmentioned], axis=1)
            return FeatureTable(key, None, HISTORY_REPORTS, rows)
        v = self.presentation.volunteer_rate
        rows = np.stack([p * r * v, p * r * (1 - v), denied, unmentioned], axis=1)
        return FeatureTable(
            key, None, SYMPTOM_REPORTS, rows, {NOT_VOLUNTEERED: SYMPTOM_REPORTS[1:]}
        )

    def history_keys(self, complaint: str, sex: Sex) -> list[str]:
        """The symptom and history items the full history reports for a patient: every one but
        the complaint's own symptoms and those asked of the other sex."""
        p = self.presentation
        own = set(p.complaint_symptoms.get(complaint, ()))
        symptoms = [
            f"symptoms.{name}"
            for name, item in p.symptoms.items()
            if name not in own and item.sex in (None, sex)
        ]
        return [*symptoms, *(f"history.{name}" for name in p.history)]

    def exam_keys(self, exam_id: str, complaint: str, sex: Sex) -> list[str]:
        """The latent variables ``exam_id`` reveals for a patient (none for the other sex' exams)."""
        exam = self.exams[exam_id]
        if exam.sex not in (None, sex):
            return []
        if exam.kind == "history":
            return self.history_keys(complaint, sex)
        return self.exam_features[exam_id]

    # -------------------------------------------------------------- queries

    def report_cumulative(self, group: str, complaint: str | None) -> np.ndarray:
        """Cumulative report tables of every symptom or history item, ``(items, diagnoses, levels)``
        (levels: :data:`SYMPTOM_REPORTS` or :data:`HISTORY_REPORTS`)."""
        cached = self._reports.get((group, complaint))
        if cached is None:
            names = getattr(self.presentation, group)
            cached = np.stack([self.table(f"{group}.{n}", complaint).cumulative for n in names])
            self._reports[(group, complaint)] = cached
        return cached

    def table(self, key: str, complaint: str | None = None) -> FeatureTable:
        """The table of ``key``; a symptom's depends on the complaint (its pertinent negatives)."""
        if complaint is not None:
            pertinent = self._pertinent.get((key, complaint))
            if pertinent is not None:
                return pertinent
        return self.tables[key]

    def level_bounds(self, key: str, sex: Sex) -> dict[str, tuple[float, float]]:
        """``NumericFeature.level_bounds`` of feature ``key``, computed once."""
        cached = self._bounds.get((key, sex))
        if cached is None:
            feature = self.features[key]
            assert isinstance(feature, NumericFeature)
            cached = self._bounds[(key, sex)] = feature.level_bounds(sex)
        return cached

    def disease(self, disease_id: str) -> Disease:
        return self.diseases[self.disease_index[disease_id]]

    def workup(self, disease_id: str, sex: Sex) -> list[str]:
        """The reference exams for a case of ``disease_id`` in a patient of ``sex``."""
        disease = self.disease(disease_id)
        extra = disease.workup_female if sex == "female" else []
        return [*disease.workup, *[e for e in extra if e not in disease.workup]]


@functools.cache
def load_knowledge(directory: Path = KNOWLEDGE_DIR) -> KnowledgeBase:
    """Load, validate and compile the knowledge base (cached per process)."""

    def read(name: str) -> dict:  # type: ignore[type-arg]
        return read_yaml(directory / name)  # type: ignore[no-any-return]

    exams_doc = read("exams.yaml")
    diseases_doc = read("diseases.yaml")
    exams = {k: Exam.model_validate(v) for k, v in exams_doc["exams"].items()}
    diseases = [Disease.model_validate(d) for d in diseases_doc["diseases"]]
    presentation = Presentation.model_validate(read("presentation.yaml"))
    broader = {str(k): list(v) for k, v in (diseases_doc.get("broader_terms") or {}).items()}
    return KnowledgeBase(exams, diseases, presentation, broader)
