"""The SWE env's tasks, tool protocol and grading, without any sandbox.

Every bundled task is checked on the host the way the env grades it: the
``FAIL_TO_PASS`` tests fail and the ``PASS_TO_PASS`` tests pass on the buggy
repository, and all pass once the known fix is applied.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rounds.actions import InvalidAction
from rounds.envs.swe.grading import grade_command, parse_test_report
from rounds.envs.swe.protocol import parse_tool_call
from rounds.envs.swe.tasks import SWETask, bundled_tasks, load_swebench

TASKS = bundled_tasks()
BUG_KINDS = {
    "off-by-one",
    "wrong operator",
    "missing edge case",
    "bad parsing",
    "wrong exception",
    "state leak",
}


def test_at_least_thirty_tasks_of_every_bug_kind() -> None:
    assert len(TASKS) >= 30
    assert len({t.instance_id for t in TASKS}) == len(TASKS)
    kinds = Counter(t.bug_kind for t in TASKS)
    assert set(kinds) == BUG_KINDS
    assert min(kinds.values()) >= 3, kinds


def test_hidden_tests_are_not_in_the_repository() -> None:
    for task in TASKS:
        assert task.files is not None and task.test_files and task.fix
        assert not set(task.test_files) & set(task.files), task.instance_id
        hidden = [Path(name).stem for name in task.test_files]
        for text in task.files.values():
            assert not any(name in text for name in hidden), task.instance_id
        assert all(t.split("::")[0] in {**task.files, **task.test_files} for t in task.tests)


def _grade_on_host(task: SWETask, root: Path, *, fixed: bool) -> dict[str, str]:
    assert task.files is not None
    for name, text in {**task.files, **task.test_files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if fixed:
        for edit in task.fix:
            path = root / edit.path
            text = path.read_text()
            assert text.count(edit.old) == 1, (task.instance_id, edit.old)
            path.write_text(text.replace(edit.old, edit.new))
    command = grade_command(str(root), task.tests, python=sys.executable)
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    return parse_test_report(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS, ids=[t.instance_id for t in TASKS])
def test_task_fails_before_and_passes_after_its_fix(task: SWETask, tmp_path: Path) -> None:
    before = _grade_on_host(task, tmp_path / "before", fixed=False)
    after = _grade_on_host(task, tmp_path / "after", fixed=True)
    assert all(before.get(t) != "PASSED" for t in task.fail_to_pass), before
    assert all(before.get(t) == "PASSED" for t in task.pass_to_pass), before
    assert all(after.get(t) == "PASSED" for t in task.tests), after


def test_parse_test_report_reads_each_status_and_misses_uncollected_tests() -> None:
    report = (
        "PASSED tests/test_a.py::test_one\n"
        "FAILED tests/test_a.py::test_two - AssertionError: 1 != 2\n"
        "ERROR tests/test_b.py::test_three - ImportError\n"
        "some other line PASSED tests/test_x.py::nope\n"
    )
    assert parse_test_report(report) == {
        "tests/test_a.py::test_one": "PASSED",
        "tests/test_a.py::test_two": "FAILED",
        "tests/test_b.py::test_three": "ERROR",
    }


def test_grading_ignores_a_planted_conftest_and_ini(tmp_path: Path) -> None:
    """A conftest.py or pytest.ini the agent writes cannot turn failures into passes."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_t.py").write_text("def test_fails():\n    assert False\n")
    (tmp_path / "conftest.py").write_text(
        "import pytest\n@pytest.hookimpl(hookwrapper=True)\n"
        "def pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:python\n")
    command = grade_command(str(tmp_path), ["tests/test_t.py::test_fails"], python=sys.executable)
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert parse_test_report(done.stdout) == {"tests/test_t.py::test_fails": "FAILED"}


# ------------------------------------------------------------------ protocol


@pytest.mark.parametrize(
    ("text", "name", "arguments"),
    [
        ('{"name": "bash", "arguments": {"command": "ls"}}', "bash", {"command": "ls"}),
        (
            '{"function": {"name": "view", "arguments": "{\\"path\\": \\"a.py\\"}"}}',
            "view",
            {"path": "a.py"},
        ),
        (
            '<think>look first</think><tool_call>{"name": "SEARCH", "arguments": {"pattern": "x"}}</tool_call>',
            "search",
            {"pattern": "x"},
        ),
        ("bash: python3 -m pytest -q", "bash", {"command": "python3 -m pytest -q"}),
        ("```bash\nls -la\n```", "bash", {"command": "ls -la"}),
        (
            "view pkg/core.py 10-40",
            "view",
            {"path": "pkg/core.py", "start_line": 10, "end_line": 40},
        ),
        ("view pkg/core.py", "view", {"path": "pkg/core.py"}),
        ("search def parse src/", "search", {"pattern": "def parse", "path": "src/"}),
        ("search TODO", "search", {"pattern": "TODO"}),
        ("submit", "submit", {}),
        (
            "edit a.py\n<old>\nx = 1\n</old>\n<new>\nx = 2\n</new>",
            "edit",
            {"command": "str_replace", "path": "a.py", "old_str": "x = 1", "new_str": "x = 2"},
        ),
        (
            "insert a.py 3\n<new>\nimport os\n</new>",
            "edit",
            {"command": "insert", "path": "a.py", "insert_line": 3, "new_str": "import os"},
        ),
    ],
)
def test_tool_calls_are_parsed_from_json_and_text(
    text: str, name: str, arguments: dict[str, object]
) -> None:
    call = parse_tool_call(text)
    assert (call.name, call.arguments) == (name, arguments)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I think the bug is in core.py", "No tool call found"),
        ('{"name": "rm", "arguments": {}}', "Unknown tool"),
        ("view", "view needs a path"),
        ("view a.py lines", "not a line range"),
        ("edit a.py\n<old>x</old>", "<old>the exact text"),
        ("insert a.py top\n<new>x</new>", "insert PATH LINE"),
        ('{"name": "bash", "arguments": "{broken"}', "not valid JSON"),
    ],
)
def test_bad_tool_calls_say_what_to_do(text: str, message: str) -> None:
    with pytest.raises(InvalidAction, match=message):
        parse_tool_call(text)


# ------------------------------------------------------------------ SWE-bench records


def _record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "repo": "owner/project",
        "instance_id": "owner__project-1",
        "base_commit": "abc123",
        "problem_statement": "It breaks.\n",
        "FAIL_TO_PASS": json.dumps(["tests/test_x.py::test_fix"]),
        "PASS_TO_PASS": ["tests/test_x.py::test_old"],
        "image_name": "sweb.eval.x86_64.owner__project-1:latest",
        "test_patch": "diff --git a/tests/test_x.py b/tests/test_x.py\n",
    }
    record.update(changes)
    return record


def test_swebench_records_load_from_jsonl_and_json(tmp_path: Path) -> None:
    jsonl = tmp_path / "tasks.jsonl"
    jsonl.write_text(json.dumps(_record()) + "\n\n" + json.dumps(_record(instance_id="b")) + "\n")
    tasks = load_swebench(jsonl)
    assert [t.instance_id for t in tasks] == ["owner__project-1", "b"]
    task = tasks[0]
    assert task.fail_to_pass == ("tests/test_x.py::test_fix",)
    assert task.pass_to_pass == ("tests/test_x.py::test_old",)
    assert task.image == "sweb.eval.x86_64.owner__project-1:latest"
    assert task.workdir == "/testbed" and task.files is None and task.base_commit == "abc123"
    listing = tmp_path / "tasks.json"
    listing.write_text(json.dumps([_record(image_name=None, image="img:1")]))
    assert load_swebench(listing)[0].image == "img:1"


def test_swebench_record_errors_name_the_record_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    record = _record()
    del record["base_commit"]
    path.write_text(json.dumps(_record()) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ValueError, match="record 2: missing base_commit"):
        load_swebench(path)
    path.write_text(json.dumps(_record(image_name=None)) + "\n")
    with pytest.raises(ValueError, match="missing image_name"):
        load_swebench(path)
    path.write_text(json.dumps(_record(FAIL_TO_PASS=[1, 2])) + "\n")
    with pytest.raises(ValueError, match="FAIL_TO_PASS must be a list of test ids"):
        load_swebench(path)
