"""DiagGym's case model: one coherent patient per case, over many sampled cases.

Each case has one latent physiological state; these tests check that every
reported value agrees with it and with physiology (Henderson-Hasselbalch, the
anion gap, rate and rhythm, one glucose, the oxygen dissociation curve), that
sex and age gate what they should, and that each diagnosis meets its own
definition as its cited source states it.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

from rounds.envs.clinic import cases as C
from rounds.envs.clinic.knowledge import KnowledgeBase, NumericFeature, load_knowledge
from rounds.envs.clinic.physiology import (
    RHYTHM_RATES,
    henderson_hasselbalch,
    rhythm_text,
    severinghaus_saturation,
)

N_CASES = 10_000
PANELS = ("cbc", "bmp", "lft", "abg", "coags", "urinalysis")
REPORTED = [
    "vitals.heart_rate",
    "vitals.spo2",
    "ecg.rate",
    "bedside_glucose.poc_glucose",
]
#: Diagnoses only women have, and the oldest age each occurs at.
PREGNANCY_DIAGNOSES = ("ectopic_pregnancy",)


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge()


@pytest.fixture(scope="module")
def sampled(kb: KnowledgeBase) -> list[tuple[C.Case, dict[str, C.FeatureResult]]]:
    keys = list(
        dict.fromkeys(
            [
                *REPORTED,
                *kb.exam_display["bmp"],
                *kb.exam_display["abg"],
                *kb.exam_display["cbc"],
                "ecg.rhythm",
            ]
        )
    )
    keys = [k for k in keys if not getattr(kb.features[k], "hidden", False)]
    out = []
    for i in range(N_CASES):
        case = C.sample_case(kb, f"gen-invariants-{i:05d}")
        out.append((case, {r.key: r for r in C.feature_results(kb, case, keys)}))
    return out


def value(results: dict[str, C.FeatureResult], key: str) -> float:
    number = results[key].value
    assert number is not None, key
    return number


def test_acid_base_follows_henderson_hasselbalch_and_the_anion_gap(
    sampled: list[tuple[C.Case, dict[str, C.FeatureResult]]],
) -> None:
    for case, r in sampled:
        ph = henderson_hasselbalch(value(r, "abg.hco3"), value(r, "abg.paco2"))
        assert abs(ph - value(r, "abg.ph")) <= 0.03, (case.note_id, case.diagnosis)
        gap = value(r, "bmp.sodium") - value(r, "bmp.chloride") - value(r, "bmp.bicarbonate")
        assert gap == value(r, "bmp.anion_gap"), case.note_id
        assert 3 <= gap <= 45, (case.note_id, case.diagnosis, gap)
        # total CO2 is the blood gas' bicarbonate plus dissolved CO2, within assay noise
        assert abs(value(r, "bmp.bicarbonate") - value(r, "abg.hco3")) <= 3.5, case.note_id
        assert 6.8 <= value(r, "abg.ph") <= 7.7, (case.diagnosis, value(r, "abg.ph"))


def test_one_heart_rate_and_a_rhythm_that_follows_it(
    kb: KnowledgeBase, sampled: list[tuple[C.Case, dict[str, C.FeatureResult]]]
) -> None:
    for case, r in sampled:
        rate = value(r, "ecg.rate")
        assert rate == value(r, "vitals.heart_rate"), case.note_id
        rhythm = r["ecg.rhythm"].level
        low, high = RHYTHM_RATES[rhythm]
        assert low <= rate <= high, (case.note_id, case.diagnosis, rhythm, rate)
        text = rhythm_text(rhythm, rate)
        if text in ("Normal sinus rhythm",):
            assert 60 <= rate <= 100
        if "tachycardia" in text.lower() or "rapid" in text:
            assert rate > 100, (text, rate)
        if "bradycardia" in text or "slow" in text:
            assert rate < 60, (text, rate)
    report = C.render_result(
        kb, "ecg", C.exam_result(kb, sampled[0][0], "ecg"), sampled[0][0].sex
    ).splitlines()
    assert report[0].startswith("Ventricular rate: ") and report[1].startswith("Rhythm: ")


def test_one_glucose_one_oxygenation_one_haemoglobin(
    sampled: list[tuple[C.Case, dict[str, C.FeatureResult]]],
) -> None:
    for case, r in sampled:
        serum, capillary = value(r, "bmp.glucose"), value(r, "bedside_glucose.poc_glucose")
        # ISO 15197:2013: 95% of meter readings within 15 mg/dL (< 100) or 15%
        assert abs(capillary - serum) <= max(15.0, 0.15 * serum), (case.note_id, serum, capillary)
        saturation = severinghaus_saturation(value(r, "abg.pao2"))
        assert abs(value(r, "vitals.spo2") - saturation) <= 3.0, case.note_id
        ratio = value(r, "cbc.hematocrit") / value(r, "cbc.hemoglobin")
        assert 2.6 <= ratio <= 3.4, (case.note_id, ratio)


def test_sex_and_age_gate_pregnancy_and_gynaecology(
    kb: KnowledgeBase, sampled: list[tuple[C.Case, dict[str, C.FeatureResult]]]
) -> None:
    female_only_symptoms = {k for k, v in kb.presentation.symptoms.items() if v.sex == "female"}
    female_exams = [e for e, exam in kb.exams.items() if exam.sex == "female"]
    violations = 0
    positive_hcg = Counter()
    for case, _ in sampled:
        disease = kb.disease(case.diagnosis)
        own = kb.presentation.complaint_symptoms.get(case.complaint, [])
        gated = {kb.presentation.symptoms[s].sex for s in own} - {None}
        violations += bool(gated and gated != {case.sex})  # a complaint of the other sex
        if case.sex == "male":
            violations += bool(female_only_symptoms & set(case.symptoms))
            violations += disease.female == 1.0
            violations += any(C.exam_result(kb, case, e) for e in female_exams)
            violations += any(C.exam_observations(kb, case, e) for e in female_exams)
        if disease.age_range is not None:
            violations += not disease.age_range[0] <= case.age <= disease.age_range[1]
        if case.state["hcg_urine.hcg"].level == "positive":
            positive_hcg[case.diagnosis] += 1
            violations += case.sex == "male" or case.age > 50
    assert violations == 0
    assert set(positive_hcg) <= {d.id for d in kb.diseases if d.female == 1.0}
    male = next(
        c
        for c in (C.sample_case(kb, f"gen-m-{i}", disease_id="renal_colic") for i in range(50))
        if c.sex == "male"
    )
    text = C.render_result(kb, "hcg_urine", C.exam_result(kb, male, "hcg_urine"), male.sex)
    assert text.startswith("Not applicable")


def _reported(kb: KnowledgeBase, case: C.Case, key: str) -> float | str:
    if key in kb.features and not (
        isinstance(kb.features[key], NumericFeature) and kb.features[key].derived  # type: ignore[union-attr]
    ):
        latent = case.state[key]
        return latent.value if latent.value is not None else latent.level
    if key in kb.features:
        (result,) = C.feature_results(kb, case, [key])
        assert result.value is not None
        return result.value
    return C.measurer(kb, case).value(key)


def test_each_diagnosis_meets_its_cited_definition(kb: KnowledgeBase) -> None:
    defined = [d for d in kb.diseases if d.criteria]
    assert {"dka", "hhs", "unstable_angina", "nstemi", "cystitis", "hypoglycemia"} <= {
        d.id for d in defined
    }
    for disease in defined:
        assert disease.definition, f"{disease.id}: criteria without their source"
        for i in range(150):
            case = C.sample_case(kb, f"gen-definition-{i}", disease_id=disease.id)
            for key, criterion in disease.criteria.items():
                reported = _reported(kb, case, key)
                if isinstance(criterion, list):
                    assert reported in criterion, (disease.id, key, reported)
                    continue
                assert isinstance(reported, float)
                low, high = criterion
                assert low is None or reported >= low, (disease.id, key, reported)
                assert high is None or reported <= high, (disease.id, key, reported)
    # the definitions as their sources state them
    dka, hhs = kb.disease("dka"), kb.disease("hhs")
    assert dka.criteria["bmp.glucose"] == (200, None) and dka.criteria["ketones.bhb"] == (3.0, None)
    assert hhs.criteria["bmp.glucose"] == (600, None) and hhs.criteria["abg.ph"] == (7.30, None)
    assert kb.disease("unstable_angina").criteria["troponin.troponin"] == (None, 14)
    assert kb.disease("cystitis").female == 1.0


def test_healthy_panels_are_abnormal_at_realistic_rates(
    kb: KnowledgeBase, sampled: list[tuple[C.Case, dict[str, C.FeatureResult]]]
) -> None:
    """Analytes the diagnosis leaves alone are abnormal about as often as reference ranges
    (central 95% intervals) imply, derived ones included, and never critical."""
    abnormal: dict[str, list[bool]] = defaultdict(list)
    implied: dict[str, list[float]] = defaultdict(list)
    for case, _ in sampled[:3000]:
        named = set(kb.disease(case.diagnosis).findings) | set(kb.disease(case.diagnosis).criteria)
        for panel in PANELS:
            considered = [
                r
                for r in C.exam_result(kb, case, panel)
                if isinstance(kb.features[r.key], NumericFeature)
                and not named & set(kb.revealed_by([r.key]))
            ]
            if not considered:
                continue
            abnormal[panel].append(any(r.level != "normal" for r in considered))
            implied[panel].append(1 - 0.95 ** len(considered))
            critical = [r for r in considered if r.level in ("very_low", "very_high")]
            assert not critical, (case.diagnosis, critical)
    print()
    for panel, flags in abnormal.items():
        rate, expected = sum(flags) / len(flags), sum(implied[panel]) / len(implied[panel])
        print(
            f"{panel:<11} healthy-range patients {len(flags):>5}  abnormal {rate:.1%}"
            f"  (independent 95% reference ranges imply {expected:.1%})"
        )
        assert rate <= expected + 0.06, panel
    assert {"bmp", "cbc", "abg"} <= set(abnormal)


def test_no_case_denies_its_own_chief_complaint(kb: KnowledgeBase) -> None:
    presentation = kb.presentation
    for split in C.BANK_SIZES:
        for note_id in C.bank_ids(split):
            case = C.bank_case(kb, note_id)
            summary = C.render_summary(kb, case)
            complaint = presentation.complaints[case.complaint]
            hpi = summary.split("History of Present Illness: ")[1].split("\n")[0]
            own = presentation.complaint_symptoms.get(case.complaint, [])
            assert not set(own) & set(case.symptoms), note_id
            for text in [complaint, *(presentation.symptoms[s].text for s in own)]:
                item = re.compile(
                    rf"(?:denies |reports |, |and |or ){re.escape(text)}(?:,|\.| or| and)"
                )
                assert not item.search(hpi.split("presents with")[1].split(".", 1)[1]), (
                    note_id,
                    summary,
                )
                # nor does the full history, which names the complaint only as what it adds to
                history = C.render_history(kb, case).replace(f"Besides {complaint}, ", "")
                history = history.replace(f"no symptoms besides {complaint}.", "")
                assert not item.search(history), (note_id, history)
