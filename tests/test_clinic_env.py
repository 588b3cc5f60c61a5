"""rounds/DiagGym-v0: actions, rewards, metrics, case files and world models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from fake_openai import completion_body, fake_openai_server

import rounds
from rounds.actions import InvalidAction
from rounds.envs.clinic.cases import bank_case, bank_ids
from rounds.envs.clinic.env import DiagGymEnv
from rounds.envs.clinic.exam_names import ExamMatcher
from rounds.envs.clinic.knowledge import load_knowledge
from rounds.envs.clinic.parsing import parse_action

#: The first test case of acute decompensated heart failure in the bank.
HEART_FAILURE = next(
    i for i in bank_ids("test") if bank_case(load_knowledge(), i).diagnosis == "heart_failure"
)


@pytest.fixture()
def env() -> DiagGymEnv:
    clinic = DiagGymEnv(split="test")
    clinic.reset(options={"task_id": HEART_FAILURE})  # acute decompensated heart failure
    return clinic


def test_reset_shows_the_case_and_hides_the_answer(env: DiagGymEnv) -> None:
    observation, info = env.reset(options={"task_id": HEART_FAILURE})
    assert observation.startswith("- Patient Information:") and "Chief Complaint" in observation
    assert "order Medical history" in observation and "order Vital signs" in observation
    assert info["answer"] == "Acute decompensated heart failure"
    assert "heart failure" not in observation.lower()
    assert info["posterior_entropy"] >= 0 and len(info["posterior_top"]) == 3


@pytest.mark.parametrize(
    "action",
    [
        "exam: CBC",
        "exam: full blood count",
        "Based on the patient's initial presentation, the following investigation(s) should be performed: complete blood count with differential\nReason: infection?",
        '{"name": "order_exam", "arguments": {"exam": "Complete blood count"}}',
        '<tool_call>{"name": "order_exam", "arguments": "{\\"exam\\": \\"FBC\\"}"}</tool_call>',
        '{"type": "function", "function": {"name": "order_exam", "arguments": {"exam": "cbc"}}}',
        "<think>Anemia? Infection?</think>\nexam: Complete Blood Count.",
    ],
)
def test_every_action_format_orders_the_same_exam(env: DiagGymEnv, action: str) -> None:
    observation, reward, terminated, truncated, info = env.step(action)
    assert not info["invalid_action"], observation
    assert observation.startswith(
        "Exam name:\nComplete blood count\nExam results:\nWhite blood cells:"
    )
    assert not terminated


def test_diagagent_final_format_and_current_diagnosis_line() -> None:
    assert (
        parse_action(
            "Current diagnosis: pneumonia\nBased on the patient's initial presentation, the following investigation(s) should be performed: chest X-ray\nReason: x"
        ).kind
        == "exam"
    )
    final = parse_action(
        "The available information is sufficient to make a diagnosis.\n\nDiagnosis: Acute appendicitis\nReason: RLQ pain"
    )
    assert (final.kind, final.name) == ("diagnose", "Acute appendicitis")
    assert parse_action('{"name": "diagnose", "arguments": {"diagnosis": "DKA"}}').name == "DKA"
    both = parse_action("exam: lipase\ndiagnosis: pancreatitis")
    assert both.kind == "exam" and "exam was ordered" in both.note


@pytest.mark.parametrize(
    ("action", "needle"),
    [
        ("", "empty"),
        ("I think the patient is sick.", "could not find an exam or a diagnosis"),
        ('{"name": "order_exam", "arguments": {"exam": 42}}', "non-empty string argument 'exam'"),
        ('{"name": "order_exam", "arguments": ["cbc"]}', "must be a JSON object"),
        ('{"name": "order_exam", "arguments": "{not json"}', "not valid JSON"),
        ('{"name": "teleport", "arguments": {}}', "Unknown tool"),
        ("exam: ", "exam name is empty"),
        ("diagnosis:", "diagnosis is empty"),
        ("exam: MRI of the spine", "not available at this facility"),
        ("exam: banana smoothie", "not available at this facility"),
        ("\x00\xff\ud800 exam: \x1b[31m", "could not find an exam"),
        ("\x00\x01", "empty"),
        ("x" * 100_000, "characters long"),
    ],
)
def test_bad_replies_are_invalid_not_exceptions(env: DiagGymEnv, action: str, needle: str) -> None:
    observation, reward, terminated, truncated, info = env.step(action)
    assert info["invalid_action"] and needle in observation
    assert info["reward_components"]["format"] == pytest.approx(-0.1)
    assert not terminated


def test_several_exams_in_one_turn_orders_the_first(env: DiagGymEnv) -> None:
    observation, *_, info = env.step("exam: CBC, BMP and lipase")
    assert not info["invalid_action"]
    assert observation.startswith("Exam name:\nComplete blood count")
    assert "only the first, Complete blood count, was done" in observation
    observation, *_, info = env.step(
        '{"name": "order_exam", "arguments": {"exam": ["ECG", "troponin"]}}'
    )
    assert "12-lead electrocardiogram" in observation and "only the first" in observation


def test_repeated_exam_gives_the_same_result_and_a_repeat_penalty(env: DiagGymEnv) -> None:
    first, *_, info1 = env.step("exam: BNP")
    again, *_, info2 = env.step("exam: B-type natriuretic peptide")
    assert again.startswith(first) and "already done" in again
    assert info2["reward_components"]["repeat_penalty"] == -0.1
    assert (
        info2["reward_components"]["info_gain"] == 0.0 and info2["reward_components"]["cost"] == 0.0
    )
    assert env.ordered == ["bnp"]


def test_info_gain_is_the_entropy_reduction(env: DiagGymEnv) -> None:
    _, info = env.reset(options={"task_id": "rounds-test-0010"})
    entropy = info["posterior_entropy"]
    for exam in ("ECG", "CBC", "chest x-ray", "lipase"):
        _, _, _, _, info = env.step(f"exam: {exam}")
        assert info["reward_components"]["info_gain"] == pytest.approx(
            entropy - info["posterior_entropy"]
        )
        entropy = info["posterior_entropy"]


def test_default_reward_reproduces_diagagent(env: DiagGymEnv) -> None:
    # Reference exams for heart failure: BNP, chest X-ray, ECG, echo, BMP, troponin.
    for exam in ("BNP", "CXR", "ECG", "echo", "BMP", "troponin"):
        env.step(f"exam: {exam}")
    _, reward, terminated, _, info = env.step("Diagnosis: acute decompensated heart failure")
    assert terminated and reward == pytest.approx(1.0 + 0.1 + 0.5)
    assert info["outcome"] == pytest.approx(1.6)
    assert info["metrics"]["exam_f1"] == 1.0 and info["metrics"]["hit_ratio"] == 1.0
    # Wrong diagnosis, half the reference exams and one extra: P = 3/4, R = 3/6, F1 = 0.6.
    env.reset(options={"task_id": HEART_FAILURE})
    for exam in ("BNP", "CXR", "ECG", "lipase"):
        env.step(f"exam: {exam}")
    _, reward, _, _, info = env.step("diagnosis: pneumonia")
    metrics = info["metrics"]
    assert (metrics["exam_precision"], metrics["exam_recall"]) == (0.75, 0.5)
    assert metrics["exam_f1"] == pytest.approx(0.6) and metrics["hit_ratio"] == 0.75
    assert reward == pytest.approx(0.1 + 0.5 * 0.6) and metrics["diagnosis_correct"] == 0.0
    assert metrics["total_cost"] == 36 + 30 + 17 + 9


def test_turn_limit_warns_then_truncates(env: DiagGymEnv) -> None:
    exams = [e.name for e in env.kb.exams.values()]
    for turn in range(1, 12):
        observation, _, terminated, truncated, info = env.step(f"exam: {exams[turn]}")
        assert not (terminated or truncated)
        assert ("one turn left" in observation) == (turn == 11)
    observation, _, terminated, truncated, info = env.step(f"exam: {exams[12]}")
    assert truncated and not terminated and "without a final diagnosis" in observation
    assert (
        info["metrics"]["diagnosis_given"] == 0.0 and info["reward_components"]["completion"] == 0.0
    )


def test_scripted_baselines_rank_as_expected() -> None:
    env = gym.make("rounds/DiagGym-v0")
    policies = env.unwrapped.scripted_policies()
    scores = {}
    for name in ("reference", "bayes", "random"):
        rng = np.random.default_rng(0)
        correct, f1 = [], []
        for task_id in env.unwrapped.task_ids("test")[:40]:
            env.reset(options={"task_id": task_id})
            while True:
                _, _, terminated, truncated, info = env.step(policies[name](env.unwrapped, rng))
                assert not info["invalid_action"]
                if terminated or truncated:
                    break
            correct.append(info["metrics"]["diagnosis_correct"])
            f1.append(info["metrics"]["exam_f1"])
        scores[name] = (np.mean(correct), np.mean(f1))
    assert scores["reference"] == (1.0, 1.0)
    assert scores["bayes"][0] >= 0.85
    assert scores["random"][0] <= 0.2


def test_generated_cases_are_unlimited_and_deterministic() -> None:
    env = DiagGymEnv(cases="generated")
    assert len(env.task_ids("train")) == 10_000_000
    first = env.reset(seed=7)[0]
    assert env.reset(seed=7)[0] == first
    assert env.task_id.startswith("gen-train-")


def write_diagbench(tmp_path: Path) -> Path:
    cases = [
        {
            "note_id": 101,
            "case_summary": "- Patient Information: 34 y/o F\n- Chief Complaint: right lower quadrant pain",
            "final_diagnosis": "Acute appendicitis",
            "recommended_exam_names": ["CBC", "Anion Gap", "CT ABDOMEN W/CONTRAST"],
            "key_pertinent_results_dict": {
                "CBC": "WBC 14.2 K/uL (H)",
                "Anion Gap": "Value: 16; Numeric Value: 16.0; Units: mEq/L; Reference Range: 8.0 - 20.0",
                "CT ABDOMEN W/CONTRAST": "Dilated appendix with periappendiceal stranding.",
            },
        },
        {
            "note_id": "x-2",
            "case_summary": "- Patient Information: 70 y/o M\n- Chief Complaint: fever",
            "final_diagnosis": "Klebsiella liver abscess",
            "recommended_exam_names": ["Blood culture"],
            "key_pertinent_results_dict": json.dumps({"Blood culture": "Klebsiella pneumoniae"}),
        },
    ]
    path = tmp_path / "diagbench.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    return path


def test_a_diagbench_file_drops_in(tmp_path: Path) -> None:
    env = gym.make("rounds/DiagGym-v0", cases=str(write_diagbench(tmp_path)))
    base = env.unwrapped
    assert list(base.task_ids("test")) == ["101", "x-2"]
    observation, info = env.reset(options={"task_id": "101"})
    assert "right lower quadrant" in observation and "posterior_entropy" not in info
    observation, *_, info = env.step("exam: anion gap")  # not in the catalogue: found in the record
    assert "Reference Range: 8.0 - 20.0" in observation and not info["invalid_action"]
    observation, *_, info = env.step(
        "exam: complete blood count"
    )  # in the catalogue and the record
    assert "WBC 14.2" in observation
    observation, *_, info = env.step("exam: lipase")  # in the catalogue, not in the record
    assert "Not performed for this patient" in observation and not info["invalid_action"]
    observation, *_, info = env.step("exam: CT abdomen and pelvis")
    assert "Dilated appendix" in observation
    _, reward, terminated, _, info = env.step("diagnosis: appendicitis (acute)")
    assert terminated and info["metrics"]["diagnosis_correct"] == 1.0
    assert info["metrics"]["exam_recall"] == 1.0 and info["metrics"]["exam_precision"] == 0.75
    # A diagnosis outside the knowledge base is matched to the record's text.
    env.reset(options={"task_id": "x-2"})
    _, _, _, _, info = env.step("diagnosis: liver abscess due to Klebsiella")
    assert info["metrics"]["diagnosis_correct"] == 1.0
    with pytest.raises(ValueError, match="needs generated cases"):
        gym.make("rounds/DiagGym-v0", cases=str(write_diagbench(tmp_path)), world_model="knowledge")


def test_a_bad_case_file_gives_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"note_id": 1, "case_summary": "x"}\n')
    with pytest.raises(ValueError, match="case 1: final_diagnosis: Field required"):
        DiagGymEnv(cases=str(bad))
    with pytest.raises(ValueError, match="does not exist"):
        DiagGymEnv(cases=str(tmp_path / "missing.json"))


def test_llm_world_model_prompt_is_diaggym_format() -> None:
    from rounds.envs.clinic.llm_world_model import cut_at_stop, diaggym_prompt

    prompt = diaggym_prompt(
        "CONTEXT", [("Anion Gap", "Value: 16"), ("CBC", "WBC 12")], "CHEST (PORTABLE AP)"
    )
    assert prompt == (
        "CONTEXT\nThe following summarizes the results from the patient's medical examination:\n"
        "Exam name:\nAnion Gap\nExam results:\nValue: 16<SEP>Exam name:\nCBC\nExam results:\nWBC 12"
        "<SEP>Exam name:\nCHEST (PORTABLE AP)\nExam results:\n"
    )
    assert diaggym_prompt("C", [], "X") == (
        "C\nThe following summarizes the results from the patient's medical examination:\nExam name:\nX\nExam results:\n"
    )
    assert cut_at_stop(" Value: 7 <SEP>Exam name:\nY") == "Value: 7"


def test_llm_world_model_over_an_openai_compatible_server() -> None:
    def handler(path: str, payload: dict) -> tuple[int, object, dict[str, str]]:
        if "troponin" in payload["prompt"].rsplit("Exam name:", 1)[-1]:
            time.sleep(4.0)  # slower than the timeout
        return 200, completion_body("WBC 15.1 x10^9/L [H]<SEP>Exam name:\nleaked"), {}

    with fake_openai_server(handler) as (base_url, received):
        env = DiagGymEnv(
            world_model="llm",
            world_model_options={
                "model": "diaggym",
                "backend": "openai",
                "base_url": base_url,
                "timeout_s": 0.3,
                "max_retries": 0,
            },
        )
        env.reset(options={"task_id": "rounds-test-0001"})
        observation, *_ = env.step("exam: CBC")
        assert observation.endswith("Exam results:\nWBC 15.1 x10^9/L [H]")
        path, payload = received[0]
        assert path == "/completions" and payload["stop"] == ["<SEP>"]
        assert payload["prompt"].endswith("Exam name:\nComplete blood count\nExam results:\n")
        assert payload["prompt"].startswith(env.patient.record.case_summary)
        env.step("exam: full blood count")  # repeated: cached, no request
        assert len(received) == 1
        started = time.perf_counter()
        observation, *_, info = env.step("exam: troponin")
        assert time.perf_counter() - started < 3.5  # the timeout, not the 4 s reply
        assert "No result: the world model failed" in observation and not info["invalid_action"]
        env.close()


@pytest.mark.slow
def test_llm_world_model_with_a_locally_trained_tiny_model(tmp_path: Path) -> None:
    """A tiny causal LM trained for a few seconds learns the format and to stop at <SEP>."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rounds.envs.clinic.llm_world_model import diaggym_prompt
    from rounds.models import tiny

    path = tiny(tmp_path / "wm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    summaries = [f"Patient {i}: fever." for i in range(8)]
    rows = []
    for summary in summaries:
        prompt = tokenizer(diaggym_prompt(summary, [], "CBC")).input_ids
        target = tokenizer("WBC 12<SEP>").input_ids
        rows.append((prompt, target))
    for _ in range(120):
        for prompt, target in rows:
            ids = torch.tensor([prompt + target])
            labels = torch.tensor([[-100] * len(prompt) + target])
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(path)
    env = DiagGymEnv(
        cases=str(write_diagbench(tmp_path)),
        world_model="llm",
        world_model_options={"model": str(path), "temperature": 0.0, "max_new_tokens": 40},
    )
    env.reset(options={"task_id": "101"})
    observation, *_ = env.step("exam: CBC")
    assert observation.endswith("Exam results:\nWBC 12"), observation
    # A timeout bounds generation time.
    slow = DiagGymEnv(
        world_model="llm",
        world_model_options={"model": str(path), "max_new_tokens": 4000, "timeout_s": 0.2},
    )
    slow.reset(options={"task_id": "rounds-test-0000"})
    started = time.perf_counter()
    observation, *_ = slow.step("exam: ECG")
    assert time.perf_counter() - started < 10.0
    result = observation.split("Exam results:\n", 1)[1]
    assert (
        len(slow.world_model.generate.tokenizer(result).input_ids) < 1000
    )  # cut well before 4,000 tokens


def test_invalid_action_exception_type_is_shared() -> None:
    with pytest.raises(InvalidAction):
        parse_action("nonsense")


def test_llm_judge_decides_and_falls_back_to_aliases() -> None:
    from fake_openai import chat_body

    def handler(path: str, payload: dict) -> tuple[int, object, dict[str, str]]:
        prompt = payload["messages"][0]["content"]
        if "Stated diagnosis: broken" in prompt:
            return 500, {"error": "down"}, {}
        return 200, chat_body("Yes." if "heart muscle" in prompt else "no"), {}

    with fake_openai_server(handler) as (base_url, received):
        env = DiagGymEnv(
            judge="llm", judge_options={"model": "judge", "base_url": base_url, "max_retries": 0}
        )
        env.reset(options={"task_id": HEART_FAILURE})  # heart failure
        assert env.step("diagnosis: failing heart muscle")[4]["metrics"]["diagnosis_correct"] == 1.0
        env.reset(options={"task_id": HEART_FAILURE})
        assert (
            env.step("diagnosis: acute heart failure")[4]["metrics"]["diagnosis_correct"] == 0.0
        )  # the judge said no
        env.reset(options={"task_id": HEART_FAILURE})
        assert (
            env.step("diagnosis: broken")[4]["metrics"]["diagnosis_correct"] == 0.0
        )  # alias fallback
        assert env.judge.fallbacks == 1
        assert (
            "Reference diagnosis: Acute decompensated heart failure"
            in received[0][1]["messages"][0]["content"]
        )
    with pytest.raises(ValueError, match="judge_options"):
        DiagGymEnv(judge="llm")


def test_a_repeated_exam_is_not_a_hit(env: DiagGymEnv) -> None:
    for exam in ("BNP", "BNP", "BNP", "lipase"):
        env.step(f"exam: {exam}")
    _, _, _, _, info = env.step("diagnosis: heart failure")
    # four exam turns, one first order of a reference exam: the repeats are misses
    assert info["metrics"]["hit_ratio"] == 0.25


@pytest.mark.parametrize(
    ("order", "exam_id"),
    [
        ("CHEST (PA AND LAT)", "chest_xray"),
        ("CHEST (PORTABLE AP)", "chest_xray"),
        ("CT HEAD W/O CONTRAST", "ct_head"),
        ("CT ABD & PELVIS WITH CONTRAST", "ct_abdomen"),
        ("CTA CHEST W&W/O C&RECONS, NON-CORONARY", "ctpa"),
        ("LIVER OR GALLBLADDER US (SINGLE ORGAN)", "ruq_ultrasound"),
        ("RENAL U.S.", "renal_ultrasound"),
        ("UNILAT LOWER EXT VEINS", "leg_duplex"),
        ("Troponin T", "troponin"),
        ("troponin I", "troponin_i"),
        ("NT-proBNP", "nt_probnp"),
        ("BNP", "bnp"),
        ("CT chest", "ct_chest"),
        ("CTPA", "ctpa"),
        ("CT urogram", "ct_urogram"),
        ("Anion Gap", "bmp"),
        ("urine sodium", "urine_sodium"),
        ("V/Q scan", "vq_scan"),
        ("HIDA scan", "hida"),
        ("venous blood gas", "vbg"),
        ("complet blod count", "cbc"),
    ],
)
def test_hospital_and_distinct_exam_names_map_to_their_own_item(order: str, exam_id: str) -> None:
    matcher = ExamMatcher(load_knowledge())
    assert matcher.resolve(order)[0] == exam_id


@pytest.mark.parametrize(
    "order",
    ["troponin X", "CT chest with contrast", "MRI abdomen", "urine potassium", "CT neck"],
)
def test_an_order_that_cannot_be_mapped_is_not_available(env: DiagGymEnv, order: str) -> None:
    observation, reward, terminated, _, info = env.step(f"exam: {order}")
    assert info["invalid_action"] and "not available" in observation and not terminated
    assert env.ordered == []


def test_lookup_mode_never_answers_another_tests_result(tmp_path: Path) -> None:
    case = {
        "note_id": "t1",
        "case_summary": "- Patient Information: 60 y/o M\n- Chief Complaint: chest pain",
        "final_diagnosis": "NSTEMI",
        "recommended_exam_names": ["Troponin T", "CHEST (PA AND LAT)"],
        "key_pertinent_results_dict": {
            "Troponin T": "0.35 ng/mL (H)",
            "CHEST (PA AND LAT)": "No acute cardiopulmonary process.",
            "Sodium": "139",
        },
    }
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(case) + "\n")
    env = DiagGymEnv(cases=str(path))
    env.reset(options={"task_id": "t1"})
    observation, *_ = env.step("exam: chest x-ray")
    assert "No acute cardiopulmonary process" in observation
    observation, *_ = env.step("exam: troponin I")  # a different assay: not the troponin T
    assert "0.35" not in observation and "Not performed" in observation
    observation, *_ = env.step("exam: urine sodium")  # not the serum sodium
    assert "139" not in observation
    observation, *_ = env.step("exam: troponin T")
    assert "0.35 ng/mL" in observation


def test_the_catalogue_has_the_common_emergency_tests() -> None:
    kb = load_knowledge()
    assert len(kb.exams) >= 95 and len(kb.diseases) >= 80
    needed = {
        "vbg", "type_and_screen", "ethanol", "acetaminophen", "salicylate",
        "urine_drug_screen", "ammonia", "ldh", "haptoglobin", "blood_smear", "phosphate",
        "fibrinogen", "fast", "vq_scan", "hida", "mrcp", "scrotal_ultrasound", "rapid_strep",
        "sti_naat", "urine_sodium", "troponin_i", "nt_probnp", "ct_chest", "ct_urogram",
    }  # fmt: skip
    assert needed <= set(kb.exams)
    mimics = {
        "sepsis", "covid19", "gerd", "msk_chest_pain", "panic_attack", "viral_uri",
        "strep_pharyngitis", "tia", "bppv", "lower_gi_bleed", "variceal_bleed",
        "mesenteric_ischemia", "ruptured_aaa", "ovarian_torsion", "testicular_torsion", "pid",
        "miscarriage", "septic_arthritis", "endocarditis", "myocarditis", "cardiac_tamponade",
        "svt", "ventricular_tachycardia", "complete_heart_block", "hyperkalemia",
        "hyponatremia", "hypercalcemia", "opioid_overdose", "acetaminophen_overdose",
        "salicylate_overdose", "alcohol_withdrawal", "rhabdomyolysis", "hsv_encephalitis",
        "guillain_barre", "cauda_equina",
    }  # fmt: skip
    assert mimics <= set(kb.disease_index)
    # Chest pain is acute coronary syndrome in roughly 5-15% of ED visits.
    table = kb.tables["complaint"]
    weight = kb.prior * table.probs[:, table.level_index["chest_pain"]]
    acs = [kb.disease_index[d] for d in ("stemi", "nstemi", "unstable_angina")]
    assert 0.05 <= weight[acs].sum() / weight.sum() <= 0.15
    # Group A streptococcus causes 5-15% of adult pharyngitis (IDSA 2012).
    weight = kb.prior * table.probs[:, table.level_index["sore_throat"]]
    assert 0.05 <= weight[kb.disease_index["strep_pharyngitis"]] / weight.sum() <= 0.15


def test_single_step_variant_scores_one_move() -> None:
    env = rounds.make("rounds/DiagGym-v0", variant="single-step")
    base = env.unwrapped
    reference = base.scripted_policies()["reference"]
    rng = np.random.default_rng(0)
    hits, diagnoses, given = [], [], []
    for task_id in base.task_ids("test")[:40]:
        observation, _ = env.reset(options={"task_id": task_id})
        assert "Make one move" in observation
        given.append(base.exams_given)
        if base.exams_given:
            assert "Examinations already done" in observation
        _, reward, terminated, _, info = env.step(reference(base, rng))
        assert terminated
        metrics = info["metrics"]
        if "hit_ratio" in metrics:
            hits.append(metrics["hit_ratio"])
        else:
            diagnoses.append(metrics["diagnosis_correct"])
        assert reward == pytest.approx(metrics["success"] + 0.1 * metrics["diagnosis_given"])
    assert hits and diagnoses and all(hits) and all(diagnoses)
    assert min(given) == 0 and max(given) >= 3
    # an exam already in the history is not a hit; a wrong diagnosis is not correct
    task = next(
        t for t in base.task_ids("test") if base.reset(options={"task_id": t}) and base.exams_given
    )
    done = base.kb.exams[base.ordered[0]].name
    *_, info = env.step(f"exam: {done}")
    assert info["metrics"]["hit_ratio"] == 0.0 and task
    env.reset(options={"task_id": task})
    *_, info = env.step(
        "diagnosis: gout" if base.patient.case.diagnosis != "gout" else "diagnosis: migraine"
    )
    assert info["metrics"]["diagnosis_correct"] == 0.0


def test_envs_share_their_matchers_by_setting() -> None:
    """Building the matchers is most of a DiagGym-v0 construction; every env of a process
    shares them (they only read their tables), one diagnosis matcher per setting."""
    first, second = DiagGymEnv(), DiagGymEnv()
    broader = DiagGymEnv(accept_broader=True)
    assert first.exam_matcher is second.exam_matcher is broader.exam_matcher
    assert first.diagnosis_matcher is second.diagnosis_matcher
    assert broader.diagnosis_matcher is not first.diagnosis_matcher
    assert broader.diagnosis_matcher.accept_broader and not first.diagnosis_matcher.accept_broader
