"""The clinic's knowledge base, case model and exact posterior."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rounds.envs.clinic import cases as C
from rounds.envs.clinic.knowledge import (
    Disease,
    Exam,
    KnowledgeBase,
    Presentation,
    load_knowledge,
)
from rounds.envs.clinic.posterior import Posterior, entropy


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge()


def test_knowledge_base_size_and_sources(kb: KnowledgeBase) -> None:
    assert len(kb.diseases) >= 40
    assert len(kb.exams) >= 60
    assert all(d.source.startswith("guideline:") for d in kb.diseases)
    assert {
        "appendicitis",
        "cholecystitis",
        "pancreatitis",
        "stemi",
        "nstemi",
        "pulmonary_embolism",
        "pneumonia",
        "dka",
        "pyelonephritis",
        "ischemic_stroke",
    } <= set(kb.disease_index)
    assert abs(kb.prior.sum() - 1) < 1e-12


def test_every_table_row_is_a_distribution(kb: KnowledgeBase) -> None:
    for key, table in kb.tables.items():
        np.testing.assert_allclose(table.probs.sum(axis=1), 1.0, err_msg=key)
        assert (table.probs >= 0).all(), key


def test_real_reference_ranges(kb: KnowledgeBase) -> None:
    wbc = kb.features["cbc.wbc"]
    assert wbc.reference("male") == (4.0, 11.0) and wbc.unit == "x10^9/L"
    assert kb.features["cbc.hemoglobin"].reference("female") == (12.0, 15.5)
    assert kb.features["bmp.sodium"].reference("male") == (135, 145)
    assert (
        kb.features["lipase.lipase"].level_bounds("male")["very_high"][0] == 181
    )  # > 3x ULN of 60
    assert kb.features["vitals.temperature"].level_bounds("male")["high"] == (38.0, 39.0)


def test_lab_report_format(kb: KnowledgeBase) -> None:
    case = C.sample_case(kb, "fmt-1", disease_id="pancreatitis")
    text = C.render_result(kb, "lipase", C.exam_result(kb, case, "lipase"), case.sex)
    assert text.startswith("Lipase: ") and "U/L" in text and "(reference 13-60)" in text
    results = C.exam_result(kb, case, "lipase")
    flag = {"normal": "", "high": "[H]", "very_high": "[HH]", "low": "[L]"}[results[0].level]
    assert flag in text


def test_exam_results_are_consistent_and_within_their_level(kb: KnowledgeBase) -> None:
    case = C.sample_case(kb, "consistency-1")
    assert C.exam_result(kb, case, "cbc") == C.exam_result(kb, case, "cbc")
    # the CMP reports the same sodium as the BMP
    bmp = {r.key: r for r in C.exam_result(kb, case, "bmp")}
    cmp_ = {r.key: r for r in C.exam_result(kb, case, "cmp")}
    assert bmp["bmp.sodium"] == cmp_["bmp.sodium"]
    for exam_id in kb.exams:
        for result in C.exam_result(kb, case, exam_id):
            feature = kb.features[result.key]
            if result.value is not None:
                low, high = feature.level_bounds(case.sex)[result.level]  # type: ignore[union-attr]
                assert low <= result.value <= high, (result, low, high)


def test_case_bank_is_reproducible_and_split(kb: KnowledgeBase) -> None:
    assert sum(C.BANK_SIZES.values()) >= 1000
    ids = {split: list(C.bank_ids(split)) for split in C.BANK_SIZES}
    assert not set(ids["train"]) & set(ids["test"])
    first = C.to_record(kb, C.sample_case(kb, ids["test"][5]), "test")
    again = C.to_record(kb, C.sample_case(kb, ids["test"][5]), "test")
    assert first == again
    assert set(first.model_dump()) >= {
        "note_id",
        "case_summary",
        "final_diagnosis",
        "recommended_exam_names",
        "key_pertinent_results_dict",
    }
    # the record also carries the full history and the vital signs (lookup mode answers them)
    assert list(first.key_pertinent_results_dict) == [
        *first.recommended_exam_names,
        "Medical history",
        "Vital signs",
    ]
    diagnoses = {C.sample_case(kb, i).diagnosis for i in ids["train"]}
    assert len(diagnoses) >= 40  # the bank covers nearly every diagnosis


def small_kb() -> KnowledgeBase:
    """Three diseases, two exams, two vitals: small enough to enumerate every joint outcome."""
    presentation = Presentation.model_validate(
        {
            "negative_report_rate": 0.2,
            "positive_report_rate": 0.6,
            "volunteer_rate": 0.25,
            "symptom_rate": 0.1,
            "history_rate": 0.1,
            "age_bands": {"young": [18, 40], "old": [41, 90]},
            "complaints": {"pain": "pain", "fever": "fever"},
            "symptoms": {"cough": "cough"},
            "history": {"smoker": {"text": "smoking", "rate": 0.3}},
            "vitals": {
                "hr": {
                    "name": "HR",
                    "unit": "/min",
                    "ref": [60, 100],
                    "range": [40, 160],
                    "decimals": 0,
                }
            },
        }
    )
    exams = {
        "lab": Exam.model_validate(
            {
                "name": "Lab",
                "kind": "lab",
                "cost": 1,
                "features": {
                    "x": {
                        "name": "X",
                        "unit": "u",
                        "ref": [1, 2],
                        "range": [0, 9],
                        "very_high_above": 5,
                        "decimals": 0,
                    },
                    "sign": {"finding": "a sign", "rate": 0.1},
                },
            }
        ),
        "scan": Exam.model_validate(
            {
                "name": "Scan",
                "kind": "imaging",
                "cost": 2,
                "features": {"s": {"name": "S", "states": {"a": "A", "b": "B", "c": "C"}}},
            }
        ),
    }
    common = {"source": "guideline: test", "workup": ["lab"]}
    diseases = [
        Disease.model_validate(
            {
                **common,
                "id": "d1",
                "name": "D1",
                "prevalence": 2,
                "age": {"young": 0.7, "old": 0.3},
                "female": 0.4,
                "complaints": {"pain": 1.0},
                "findings": {
                    "symptoms.cough": 0.8,
                    "lab.x": {"high": 0.6, "normal": 0.4},
                    "scan.s": {"a": 0.7, "b": 0.3},
                },
            }
        ),
        Disease.model_validate(
            {
                **common,
                "id": "d2",
                "name": "D2",
                "prevalence": 1,
                "age": {"young": 0.2, "old": 0.8},
                "female": 0.6,
                "complaints": {"pain": 0.5, "fever": 0.5},
                "findings": {
                    "lab.sign": 0.9,
                    "vitals.hr": {"high": 0.7, "normal": 0.3},
                    "history.smoker": 0.7,
                },
            }
        ),
        Disease.model_validate(
            {
                **common,
                "id": "d3",
                "name": "D3",
                "prevalence": 1,
                "age": {"young": 0.5, "old": 0.5},
                "female": 0.5,
                "complaints": {"fever": 1.0},
                "findings": {"lab.x": {"very_high": 0.5, "low": 0.5}, "scan.s": {"c": 1.0}},
            }
        ),
    ]
    return KnowledgeBase(exams, diseases, presentation, {})


def brute_force_posterior(kb: KnowledgeBase, observed: dict[str, str]) -> np.ndarray:
    """P(d | observed) by summing the full joint over every assignment of every feature."""
    keys = list(kb.tables)
    joint = np.zeros(len(kb.diseases))
    if not observed.keys() <= kb.tables.keys():
        raise KeyError(observed)
    for d in range(len(kb.diseases)):
        for assignment in itertools.product(*[kb.tables[k].levels for k in keys]):
            if any(
                k in observed and v not in kb.tables[k].groups[observed[k]]
                for k, v in zip(keys, assignment, strict=True)
            ):
                continue
            p = kb.prior[d]
            for k, v in zip(keys, assignment, strict=True):
                p *= kb.tables[k].probs[d, kb.tables[k].level_index[v]]
            joint[d] += p
    total = joint.sum()
    return joint / total if total > 0 else np.full_like(joint, np.nan)


def test_posterior_matches_brute_force_enumeration() -> None:
    kb = small_kb()
    rng = np.random.default_rng(0)
    keys = list(kb.tables)
    checked = 0
    for _ in range(40):
        chosen = rng.choice(len(keys), size=int(rng.integers(0, len(keys) + 1)), replace=False)
        observed = {keys[i]: str(rng.choice(kb.tables[keys[i]].levels)) for i in chosen}
        expected = brute_force_posterior(kb, observed)
        if not np.isfinite(expected).all():
            continue  # impossible under every diagnosis (a critical value no disease names)
        checked += 1
        posterior = Posterior(kb)
        for key, level in observed.items():
            posterior.observe(key, level)
        np.testing.assert_allclose(
            posterior.probs, expected, rtol=1e-9, atol=1e-12, err_msg=str(observed)
        )
        assert posterior.entropy == pytest.approx(entropy(expected))
    assert checked >= 12


def test_a_coarse_observation_refined_later_matches_brute_force() -> None:
    """Triage tells only ``not_volunteered``; the history's finer report replaces it exactly."""
    kb = small_kb()
    table = kb.tables["symptoms.cough"]
    assert table.levels == ("volunteered", "present", "denied", "unmentioned")
    for fine in ("present", "denied", "unmentioned"):
        for other in ({}, {"complaint": "pain"}, {"lab.x": "high", "sex": "female"}):
            posterior = Posterior(kb)
            posterior.observe_all(other)
            assert posterior.observe("symptoms.cough", "not_volunteered")
            np.testing.assert_allclose(
                posterior.probs,
                brute_force_posterior(kb, {**other, "symptoms.cough": "not_volunteered"}),
                rtol=1e-9,
            )
            assert posterior.pending("symptoms.cough") is not None
            assert posterior.observe("symptoms.cough", fine)
            assert posterior.pending("symptoms.cough") is None
            np.testing.assert_allclose(
                posterior.probs,
                brute_force_posterior(kb, {**other, "symptoms.cough": fine}),
                rtol=1e-9,
            )
            assert not posterior.observe("symptoms.cough", "not_volunteered")  # coarser: no news
            with pytest.raises(ValueError, match="contradicts"):
                posterior.observe("symptoms.cough", "volunteered")


def test_pending_is_the_conditional_table_given_what_is_known() -> None:
    kb = small_kb()
    posterior = Posterior(kb)
    np.testing.assert_array_equal(
        posterior.pending("symptoms.cough"), kb.tables["symptoms.cough"].probs
    )
    posterior.observe("symptoms.cough", "not_volunteered")
    pending = posterior.pending("symptoms.cough")
    assert pending is not None
    np.testing.assert_allclose(pending.sum(axis=1), 1.0)
    assert (pending[:, 0] == 0).all()  # a symptom not volunteered was not volunteered
    probs = kb.tables["symptoms.cough"].probs
    np.testing.assert_allclose(
        pending[:, 1:], probs[:, 1:] / probs[:, 1:].sum(axis=1, keepdims=True)
    )


def test_sampled_cases_are_calibrated_against_the_posterior(kb: KnowledgeBase) -> None:
    """Cases are drawn from the model the posterior assumes: E[P(truth | x)] = E[Σ_d P(d | x)²]."""
    truth_probability, self_agreement = [], []
    for i in range(600):
        case = C.sample_case(kb, f"calibration-{i}")
        posterior = Posterior(kb)
        posterior.observe_all(case.observations())
        for exam_id in ("history", "vitals", "cbc", "ecg", "abg"):
            posterior.observe_all(C.exam_observations(kb, case, exam_id))
        truth_probability.append(posterior.probability(case.diagnosis))
        self_agreement.append(float((posterior.probs**2).sum()))
    assert np.mean(truth_probability) == pytest.approx(np.mean(self_agreement), abs=0.03)


def test_observing_a_feature_twice_changes_nothing(kb: KnowledgeBase) -> None:
    posterior = Posterior(kb)
    assert posterior.observe("cbc.wbc", "high")
    before = posterior.probs.copy()
    assert not posterior.observe("cbc.wbc", "high")
    np.testing.assert_array_equal(before, posterior.probs)


def test_bad_knowledge_is_rejected_with_a_clear_message() -> None:
    kb = small_kb()
    bad = kb.diseases[0].model_copy(update={"findings": {"lab.x": {"sky_high": 1.0}}})
    with pytest.raises(ValueError, match="unknown levels"):
        KnowledgeBase(kb.exams, [bad, *kb.diseases[1:]], kb.presentation, {})
    bad = kb.diseases[0].model_copy(update={"findings": {"lab.nope": 0.5}})
    with pytest.raises(ValueError, match="unknown feature"):
        KnowledgeBase(kb.exams, [bad, *kb.diseases[1:]], kb.presentation, {})
    bad = kb.diseases[0].model_copy(update={"findings": {"scan.s": {"a": 0.5, "b": 0.2}}})
    with pytest.raises(ValueError, match=r"sum to 0\.700"):
        KnowledgeBase(kb.exams, [bad, *kb.diseases[1:]], kb.presentation, {})
