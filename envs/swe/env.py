"""``rounds/SWE-v0``: the env class."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, SupportsFloat

from rounds.actions import InvalidAction, ToolCall
from rounds.envs.swe.grading import GRADE_TIMEOUT_S, grade_command, parse_test_report
from rounds.envs.swe.protocol import FORMAT_HELP, TOOLS, parse_tool_call
from rounds.envs.swe.tasks import SWETask, bundled_tasks, load_swebench
from rounds.sandboxes import (
    Limits,
    Sandbox,
    SandboxError,
    SandboxPool,
    make_sandbox,
    resolve_backend,
    shared_pool,
)
from rounds.shaping import gated_accumulate, weighted_reward
from rounds.text_env import EpisodeEnd, ScriptedPolicy, StepResult, TextEnv

#: Outcome levels, lowest first (DESIGN: no submission < empty patch < tests fail < pass).
OUTCOME_LEVELS = ("no_submission", "empty_patch", "tests_fail", "resolved")
DEFAULT_OUTCOME_VALUES: Mapping[str, float] = {
    "no_submission": 0.0,
    "empty_patch": 0.1,
    "tests_fail": 0.2,
    "resolved": 1.0,
}
#: Immediate (turn-level) rewards and the value each pays when it fires.
IMMEDIATE_COMPONENTS = ("valid_call", "exit_ok", "file_modified", "tests_run")
DEFAULT_TURN_REWARDS: Mapping[str, float] = {
    "valid_call": 0.02,
    "exit_ok": 0.02,
    "file_modified": 0.05,
    "tests_run": 0.05,
}
_TEST_COMMAND = re.compile(r"\b(pytest|py\.test|unittest)\b")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_VIEW_LINES = 400


def count_tokens(text: str) -> int:
    """Tokens of tool output, counted as word and punctuation pieces (no model tokenizer)."""
    return len(_TOKEN.findall(text))


def clip_output(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, keeping its head and tail, with a note saying how
    much was cut and how to see it."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    return (
        f"{text[:head]}\n[... {cut:,} characters cut from the middle of {len(text):,}; "
        f"use head, tail, sed -n or grep to see them ...]\n{text[-tail:]}"
    )


class SWEEnv(TextEnv):
    """Repository repair in a sandbox: read the issue, fix the code, submit; hidden tests judge.

    ## Description
    After SWE-bench. Each task is a small Python repository with a real bug (an
    off-by-one, a wrong operator, a missing edge case, bad parsing, a wrong
    exception, state leaking between calls), an issue written as a user would
    report it, and hidden tests: ``FAIL_TO_PASS`` tests the fix must make pass
    and ``PASS_TO_PASS`` tests that must keep passing. The repository lives in a
    sandbox (:mod:`rounds.sandboxes`: a hardened docker container, or bubblewrap)
    taken warm from a shared pool and reset between episodes. The hidden tests
    enter the sandbox only when the agent submits. With ``tasks=PATH`` the env runs
    SWE-bench-style records instead, in their own images.

    ## Action Space
    Text: one tool call per turn, as JSON (``{"name": "bash", "arguments":
    {"command": ...}}``, OpenAI's format, or inside ``<tool_call>``) or plain text
    (``bash: CMD``, ``view PATH 1-40``, ``search PATTERN [PATH]``, ``edit PATH`` +
    ``<old>..</old><new>..</new>``, ``insert PATH LINE`` + ``<new>..</new>``,
    ``submit``). Tools: ``bash``, ``view``, ``edit`` (``str_replace``, ``insert``,
    ``create``), ``search``, ``submit`` (see ``tools``).

    ## Observation Space
    Text: the issue and the repository's file list on reset; then each tool's
    output (exit code, stdout, stderr, duration), cut to ``max_output_chars`` with a
    note saying how much was cut.

    ## Rewards
    The outcome level's value (``outcome_values``) on the last turn, and immediate
    rewards on the turns they are earned, capped at ``max_turn_reward`` per
    episode. ``shaping="gated"`` (default, G-RA via :func:`rounds.shaping.gated_accumulate`):
    immediate rewards are paid on the last turn and only if the outcome reaches
    ``gate`` (default 0.5, above "tests fail"), so activity without a fix earns
    nothing. ``shaping="direct"``: they are paid on the turn they are earned.

    ## Reward Components
    | key | non-zero when | range |
    |---|---|---|
    | ``outcome`` | the last turn: the outcome level's value | {0, 0.1, 0.2, 1} by default |
    | ``format`` | the reply was not a valid tool call, or the tool refused it (edit text not found, path outside the repository) | {-invalid_action_penalty, 0} |
    | ``valid_call`` | a valid tool call | {0, 0.02} |
    | ``exit_ok`` | a ``bash`` command exited 0 | {0, 0.02} |
    | ``file_modified`` | the turn changed the repository's files | {0, 0.05} |
    | ``tests_run`` | a ``bash`` command ran tests (pytest, unittest) | {0, 0.05} |

    The four immediate components report their raw values every turn (before gating and
    the cap), so a trainer can re-shape them; ``info["immediate_reward"]`` is what the cap left.

    ## Starting State
    The repository at its buggy commit, no hidden tests, no processes.

    ## Episode End
    Terminated by ``submit``. Truncated after ``max_turns`` (default 30) without a
    submission (outcome ``no_submission``). ``info["metrics"]``: ``resolved``,
    ``submitted``, ``modified`` (a file changed during the episode), ``empty_patch``,
    ``tests_passed`` (fraction of the hidden tests), ``turns``, ``tool_output_tokens``.
    ``info["patch"]`` on the last turn is the submitted diff.

    ## Arguments
    - ``tasks``: None (the bundled tasks) or a path to SWE-bench-style records.
    - ``backend``: ``auto`` (docker when a daemon answers, else bubblewrap), ``docker``, ``process``.
    - ``image``: the docker image of bundled tasks (default ``rounds/sandbox-base:bookworm``).
    - ``pool_size``: sandboxes alive at once per image, shared by all envs of the process
      (default 32; a reset waits when all are in use).
    - ``command_timeout``: seconds per command (default 30); ``max_output_chars`` (8000).
    - ``outcome_values``, ``turn_rewards``, ``max_turn_reward`` (0.5), ``shaping``, ``gate``.
    - ``max_turns``, ``split``, ``reward_weights``, ``invalid_action_penalty``,
      ``max_action_chars``, ``render_mode``: see :class:`~rounds.TextEnv`.

    ## Version History
    - v0: first release (30 bundled tasks).
    """

    reward_component_names = ("outcome", "format", *IMMEDIATE_COMPONENTS)
    outcome_components = ("outcome",)
    default_reward_weights: ClassVar[Mapping[str, float]] = dict.fromkeys(
        reward_component_names, 1.0
    )
    splits = ("train", "validation", "test", "all")
    replay_metrics = ("resolved", "submitted", "modified", "turns", "tool_output_tokens")
    replay_series = ("output_tokens",)
    unrecorded_info_keys = ("patch",)
    variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "direct": {"shaping": "direct"},
        "process": {"backend": "process"},
    }

    def __init__(
        self,
        *,
        tasks: str | None = None,
        backend: str = "auto",
        image: str | None = None,
        pool_size: int = 32,
        command_timeout: float = 30.0,
        max_output_chars: int = 8000,
        outcome_values: Mapping[str, float] | None = None,
        turn_rewards: Mapping[str, float] | None = None,
        max_turn_reward: float = 0.5,
        shaping: str = "gated",
        gate: float = 0.5,
        limits: Limits | None = None,
        max_turns: int = 30,
        split: str = "all",
        **kwargs: Any,
    ) -> None:
        super().__init__(max_turns=max_turns, split=split, **kwargs)
        if shaping not in ("gated", "direct"):
            raise ValueError(f"shaping must be 'gated' or 'direct', got {shaping!r}")
        unknown = set(outcome_values or {}) - set(OUTCOME_LEVELS)
        unknown |= set(turn_rewards or {}) - set(IMMEDIATE_COMPONENTS)
        if unknown:
            raise ValueError(
                f"unknown reward names {sorted(unknown)}; outcome levels: {list(OUTCOME_LEVELS)}, "
                f"turn rewards: {list(IMMEDIATE_COMPONENTS)}"
            )
        self.outcome_values = {**DEFAULT_OUTCOME_VALUES, **(outcome_values or {})}
        self.turn_rewards = {**DEFAULT_TURN_REWARDS, **(turn_rewards or {})}
        self.max_turn_reward = max_turn_reward
        self.shaping = shaping
        self.gate = gate
        self.command_timeout = command_timeout
        self.max_output_chars = max_output_chars
        self.limits = limits or Limits()
        self.tasks_path = tasks
        self._tasks: tuple[SWETask, ...] = load_swebench(tasks) if tasks else bundled_tasks()
        self._by_id = {t.instance_id: t for t in self._tasks}
        self.backend = resolve_backend(backend)
        self.image = image
        self.pool_size = pool_size
        self.task: SWETask = self._tasks[0]
        self.sandbox: Sandbox | None = None
        self._pool: SandboxPool | None = None
        self._stepping = False
        self._reset_episode_state()

    def _reset_episode_state(self) -> None:
        self._submitted = False
        self._level = "no_submission"
        self._patch = ""
        self._tests_passed = 0.0
        self._modified = False
        self._output_tokens = 0
        self._paid = 0.0
        self._immediate: list[float] = []
        self._fingerprint = ""

    # ------------------------------------------------------------ the task

    @property
    def system_prompt(self) -> str:
        return (
            "You are a software engineer fixing a bug in a Python repository. Read the issue, "
            "find the cause, change the code so the issue is resolved without breaking other "
            "behaviour, then submit. The repository is in your working directory; hidden tests "
            "judge your fix after you submit. There is no network.\n"
            "Tools: bash (run a command), view (show a file with line numbers, or a range), "
            "search (grep a pattern), edit (str_replace: replace text that occurs exactly once; "
            "insert: add text after a line; create: write a new file), submit (end the episode "
            f"with the repository as it is).\n{FORMAT_HELP}"
        )

    @property
    def tools(self) -> list[dict[str, Any]]:
        return [dict(tool) for tool in TOOLS]

    def task_ids(self, split: str | None = None) -> Sequence[str]:
        split = split or self.split
        ids = [t.instance_id for t in self._tasks]
        if split == "all" or len(ids) < 5:
            return ids
        index = {"test": 0, "validation": 1}.get(split)
        if index is None:
            return [i for n, i in enumerate(ids) if n % 5 not in (0, 1)]
        return [i for n, i in enumerate(ids) if n % 5 == index]

    def scripted_policies(self) -> dict[str, ScriptedPolicy]:
        from rounds.envs.swe.baselines import busy_policy, noop_policy, reference_policy

        return {"reference": reference_policy, "noop": noop_policy, "busy": busy_policy}

    def episode_meta(self) -> dict[str, Any]:
        meta = super().episode_meta()
        meta["shaping"] = {
            "mode": self.shaping,
            "gate": self.gate,
            "immediate_components": list(IMMEDIATE_COMPONENTS),
            "max_turn_reward": self.max_turn_reward,
        }
        return meta

    # ------------------------------------------------------------ sandbox

    def _acquire(self, task: SWETask) -> Sandbox:
        image = task.image or self.image
        key = (self.backend, image, task.workdir, self.limits)
        backend, limits, workdir = self.backend, self.limits, task.workdir

        def factory(files: Mapping[str, bytes] | None) -> Sandbox:
            return make_sandbox(backend, files=files, image=image, workdir=workdir, limits=limits)

        self._pool = shared_pool(key, factory, max_size=self.pool_size)
        return self._pool.acquire(task.repo_bytes())

    def _release(self, *, broken: bool = False) -> None:
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is not None and self._pool is not None:
            self._pool.release(sandbox, broken=broken)

    def close(self) -> None:
        """Give the sandbox back to the pool, or close it when a step is still running on it
        (a caller that timed the step out must not hand a busy sandbox to the next episode)."""
        self._release(broken=self._stepping)
        super().close()

    # ------------------------------------------------------------ hooks

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        task = self._by_id.get(task_id)
        if task is None:
            raise KeyError(f"unknown task {task_id!r}; see env.unwrapped.task_ids('all')")
        self._release()
        self.task = task
        self._reset_episode_state()
        self.sandbox = self._acquire(task)
        self._fingerprint = self._tree_fingerprint()
        listing = self._listing()
        observation = (
            f"Repository: {task.repo} (in {task.workdir})\n\nIssue:\n{task.problem_statement}\n\n"
            f"Files:\n{listing}\n\nFix the issue, then call submit."
        )
        return observation, {"repo": task.repo, "bug_kind": task.bug_kind}

    def _listing(self) -> str:
        result = self._sandbox().exec(
            "find . -path ./.git -prune -o -type f -print | sed 's|^\\./||' | sort | head -n 200",
            timeout=20,
        )
        return result.stdout.strip() or "(empty)"

    def _sandbox(self) -> Sandbox:
        if self.sandbox is None:
            raise SandboxError("No sandbox: call reset() first.")
        return self.sandbox

    def _tree_fingerprint(self) -> str:
        """A digest of the work tree's file names, sizes, and modification and change times
        (the change time is the kernel's: no write can leave it as it was)."""
        listing = self._sandbox().exec(
            "find . -path ./.git -prune -o -name __pycache__ -prune -o -name .pytest_cache "
            "-prune -o -type f -printf '%p %s %T@ %C@\\n' | sort | md5sum",
            timeout=20,
        )
        return listing.stdout.strip()

    def _act(self, text: str) -> StepResult:
        call = parse_tool_call(text)
        handler = {
            "bash": self._bash,
            "view": self._view,
            "edit": self._edit,
            "search": self._search,
            "submit": self._submit,
        }[call.name]
        try:
            result = handler(call)
            changed = call.name in ("bash", "edit") and self._tree_changed()
        except SandboxError as err:
            raise InvalidAction(str(err)) from err
        result.components["valid_call"] = self.turn_rewards["valid_call"]
        if changed:
            self._modified = True
            result.components["file_modified"] = self.turn_rewards["file_modified"]
        tokens = count_tokens(result.observation)
        self._output_tokens += tokens
        result.info["output_tokens"] = tokens
        result.info["tool"] = call.name
        return result

    def _tree_changed(self) -> bool:
        """Whether the work tree changed since the last check."""
        fingerprint = self._tree_fingerprint()
        changed = fingerprint != self._fingerprint
        self._fingerprint = fingerprint
        return changed

    def _bash(self, call: ToolCall) -> StepResult:
        command = call.arguments.get("command")
        if not isinstance(command, str) or not command.strip():
            raise InvalidAction(f"bash needs a non-empty 'command' string. {FORMAT_HELP}")
        timeout = call.arguments.get("timeout", self.command_timeout)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool):
            raise InvalidAction("bash's 'timeout' must be a number of seconds.")
        timeout = max(1.0, min(float(timeout), self.limits.max_timeout_s))
        result = self._sandbox().exec(command, timeout=timeout)
        parts = [f"exit code {result.exit_code} ({result.duration_s:.2f} s)"]
        if result.timed_out:
            parts.append(
                f"[the command ran past its {timeout:g} s timeout and was killed, with every "
                "process it started]"
            )
        if result.truncated:
            parts.append(
                f"[output passed {self.limits.output_bytes:,} bytes; the command was stopped]"
            )
        if result.stdout:
            parts.append(result.stdout.rstrip("\n"))
        if result.stderr:
            parts.append(f"[stderr]\n{result.stderr.rstrip()}")
        components = {}
        if result.ok:
            components["exit_ok"] = self.turn_rewards["exit_ok"]
        if _TEST_COMMAND.search(command):
            components["tests_run"] = self.turn_rewards["tests_run"]
        observation = clip_output("\n".join(parts), self.max_output_chars)
        return StepResult(observation, components=components, info={"exit_code": result.exit_code})

    def _path_argument(self, call: ToolCall) -> str:
        path = call.arguments.get("path")
        if not isinstance(path, str) or not path.strip():
            raise InvalidAction(f"{call.name} needs a 'path' string. {FORMAT_HELP}")
        return path.strip()

    def _view(self, call: ToolCall) -> StepResult:
        path = self._path_argument(call)
        sandbox = self._sandbox()
        try:
            data = sandbox.read_file(path)
        except SandboxError as err:
            if "directory" not in str(err):
                raise
            target = shlex.quote(path)
            listing = sandbox.exec(
                f"find {target} -maxdepth 2 -not -path '*/.*' | sort | head -n 200", timeout=20
            )
            return StepResult(
                clip_output(listing.stdout.rstrip() or "(empty)", self.max_output_chars)
            )
        if b"\x00" in data:
            raise InvalidAction(
                f"{path} is a binary file ({len(data):,} bytes); view shows text files only. "
                f"Inspect it with bash, e.g. 'bash: xxd {path} | head'."
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidAction(
                f"{path} is not UTF-8 text; view shows text files only. Use bash to inspect it."
            ) from err
        lines = text.splitlines()
        start = _int_argument(call, "start_line", 1)
        end = _int_argument(call, "end_line", len(lines))
        if end < 0:
            end = len(lines)
        if start < 1 or (lines and start > len(lines)) or end < start:
            raise InvalidAction(
                f"Lines {start}-{end} are not in {path}, which has {len(lines)} lines."
            )
        shown_end = min(end, start + _VIEW_LINES - 1, len(lines))
        body = "\n".join(f"{n:6d}\t{lines[n - 1]}" for n in range(start, shown_end + 1))
        if shown_end < min(end, len(lines)):
            body += (
                f"\n[... lines {shown_end + 1}-{min(end, len(lines))} not shown; view at most "
                f"{_VIEW_LINES} lines at a time ...]"
            )
        return StepResult(clip_output(body or f"({path} is empty)", self.max_output_chars))

    def _edit(self, call: ToolCall) -> StepResult:
        path = self._path_argument(call)
        command = call.arguments.get("command") or (
            "str_replace" if "old_str" in call.arguments else "create"
        )
        new = call.arguments.get("new_str")
        if not isinstance(new, str):
            raise InvalidAction("edit needs 'new_str', a string (it may be empty).")
        sandbox = self._sandbox()
        if command == "create":
            sandbox.write_file(path, new.encode())
            return StepResult(f"Wrote {path} ({len(new.splitlines())} lines).")
        try:
            data = sandbox.read_file(path)
        except SandboxError as err:
            raise InvalidAction(f"{err} Create it with edit command 'create'.") from err
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidAction(f"{path} is not UTF-8 text; edit changes text files only.") from err
        if command == "str_replace":
            old = call.arguments.get("old_str")
            if not isinstance(old, str) or not old:
                raise InvalidAction(
                    "str_replace needs 'old_str', the exact non-empty text to replace."
                )
            count = text.count(old)
            if count == 0:
                raise InvalidAction(
                    f"old_str was not found in {path}. View the file and copy the text exactly, "
                    "including indentation and line breaks."
                )
            if count > 1:
                where = [
                    text[: m.start()].count("\n") + 1 for m in re.finditer(re.escape(old), text)
                ]
                raise InvalidAction(
                    f"old_str occurs {count} times in {path} (lines {', '.join(map(str, where[:10]))}); "
                    "include more surrounding lines so it occurs exactly once."
                )
            updated = text.replace(old, new, 1)
            first = text[: text.index(old)].count("\n") + 1
        elif command == "insert":
            lines = text.splitlines(keepends=True)
            line = _int_argument(call, "insert_line", -1)
            if not 0 <= line <= len(lines):
                raise InvalidAction(
                    f"insert_line must be between 0 and {len(lines)} (the lines of {path}); got {line}."
                )
            if lines and not lines[-1].endswith("\n") and line == len(lines):
                lines[-1] += "\n"
            insertion = new if new.endswith("\n") else new + "\n"
            updated = "".join([*lines[:line], insertion, *lines[line:]])
            first = line + 1
        else:
            raise InvalidAction(
                f"Unknown edit command {command!r}; use str_replace, insert or create."
            )
        sandbox.write_file(path, updated.encode())
        shown = updated.splitlines()
        low, high = max(1, first - 3), min(len(shown), first + len(new.splitlines()) + 3)
        snippet = "\n".join(f"{n:6d}\t{shown[n - 1]}" for n in range(low, high + 1))
        return StepResult(f"Edited {path}. Lines {low}-{high} now:\n{snippet}")

    def _search(self, call: ToolCall) -> StepResult:
        pattern = call.arguments.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise InvalidAction("search needs a non-empty 'pattern' string.")
        path = call.arguments.get("path") or "."
        if not isinstance(path, str):
            raise InvalidAction("search's 'path' must be a string.")
        result = self._sandbox().exec(
            f"grep -rnIE --exclude-dir=.git --exclude-dir=__pycache__ -e {shlex.quote(pattern)} "
            f"-- {shlex.quote(path)} | head -n 100",
            timeout=20,
        )
        if result.stderr.strip() and not result.stdout:
            raise InvalidAction(f"search failed: {result.stderr.strip()[:500]}")
        body = result.stdout.rstrip() or f"No matches for {pattern!r} in {path}."
        return StepResult(clip_output(body, self.max_output_chars))

    def _submit(self, call: ToolCall) -> StepResult:
        sandbox = self._sandbox()
        task = self.task
        self._submitted = True
        self._patch = self._current_patch()
        if not self._patch.strip():
            self._level = "empty_patch"
            return StepResult(
                "Submitted an empty patch: the repository is unchanged.",
                terminated=True,
                info={"patch": ""},
            )
        self._install_hidden_tests()
        run = sandbox.exec(grade_command(task.workdir, task.tests), timeout=GRADE_TIMEOUT_S)
        statuses = parse_test_report(run.stdout)
        passed = [t for t in task.tests if statuses.get(t) == "PASSED"]
        self._tests_passed = len(passed) / len(task.tests) if task.tests else 0.0
        resolved = len(passed) == len(task.tests)
        self._level = "resolved" if resolved else "tests_fail"
        failing = [t for t in task.tests if statuses.get(t) != "PASSED"]
        verdict = (
            "All hidden tests pass: the issue is resolved."
            if resolved
            else f"{len(failing)} of {len(task.tests)} hidden tests fail: {', '.join(failing[:5])}."
        )
        return StepResult(
            f"Submitted a patch of {len(self._patch.splitlines())} lines. {verdict}",
            terminated=True,
            info={"patch": self._patch},
        )

    def _current_patch(self) -> str:
        task, sandbox = self.task, self._sandbox()
        if task.files is not None:
            return sandbox.diff()
        result = sandbox.exec(
            f"git add -A >/dev/null 2>&1; git -c core.fileMode=false diff --cached --text "
            f"{shlex.quote(task.base_commit or 'HEAD')}",
            timeout=60,
        )
        return result.stdout

    def _install_hidden_tests(self) -> None:
        """Write the hidden tests into the work tree (after the patch is taken), over any
        file of the same name the agent made."""
        task, sandbox = self.task, self._sandbox()
        for name, content in task.test_files.items():
            sandbox.write_file(name, content.encode())
        if task.test_patch:
            sandbox.write_file(".rounds-test.patch", task.test_patch.encode())
            sandbox.exec(
                "git apply --whitespace=nowarn .rounds-test.patch; rm -f .rounds-test.patch",
                timeout=60,
            )

    def _finish(self, terminated: bool) -> EpisodeEnd:
        return EpisodeEnd(
            components={"outcome": self.outcome_values[self._level]},
            metrics={
                "resolved": float(self._level == "resolved"),
                "submitted": float(self._submitted),
                "modified": float(self._modified),
                "empty_patch": float(self._level == "empty_patch"),
                "tests_passed": self._tests_passed,
                "turns": float(self.turn),
                "tool_output_tokens": float(self._output_tokens),
            },
        )

    def _invalid_hint(self) -> str:
        return ""

    # ------------------------------------------------------------ shaping

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """One turn, with the immediate rewards capped and, under gating, withheld until the
        outcome is known (then paid only if it reaches ``gate``)."""
        self._stepping = True
        try:
            observation, reward, terminated, truncated, info = super().step(action)
        finally:
            self._stepping = False
        components = info.get("reward_components", {})
        raw = weighted_reward(
            {k: v for k, v in components.items() if k in IMMEDIATE_COMPONENTS}, self.reward_weights
        )
        room = max(0.0, self.max_turn_reward - self._paid)
        immediate = min(raw, room) if raw > 0 else raw
        self._paid += max(0.0, immediate)
        self._immediate.append(immediate)
        info["immediate_reward"] = immediate
        turn_reward = float(reward) - raw
        if self.shaping == "direct":
            turn_reward += immediate
        elif terminated or truncated:
            gated, _ = gated_accumulate(self._immediate, float(info.get("outcome", 0.0)), self.gate)
            turn_reward += sum(gated)
            info["gated_immediate_reward"] = sum(gated)
        return observation, turn_reward, terminated, truncated, info

    # ------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """The episode's state: the task, the work tree's files and the counters."""
        sandbox = self._sandbox()
        return {
            "task_id": self.task_id,
            "turn": self.turn,
            "done": self._done,
            "files": sandbox.files(),
            "start": sandbox.start_files,
            "state": {
                "submitted": self._submitted,
                "level": self._level,
                "patch": self._patch,
                "tests_passed": self._tests_passed,
                "modified": self._modified,
                "output_tokens": self._output_tokens,
                "paid": self._paid,
                "immediate": list(self._immediate),
            },
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Return to a :meth:`snapshot` (same task; the work tree is rewritten)."""
        if snapshot["task_id"] != self.task_id or self.sandbox is None:
            self.reset(options={"task_id": snapshot["task_id"]})
        sandbox = self._sandbox()
        sandbox.reset(snapshot["start"])
        for name, data in snapshot["files"].items():
            if snapshot["start"].get(name) != data:
                sandbox.write_file(name, data)
        for name in set(snapshot["start"]) - set(snapshot["files"]):
            sandbox.exec(f"rm -f -- {shlex.quote(name)}", timeout=10)
        state = snapshot["state"]
        self.turn, self._done = int(snapshot["turn"]), bool(snapshot["done"])
        self._submitted, self._level, self._patch = (
            state["submitted"],
            state["level"],
            state["patch"],
        )
        self._tests_passed, self._modified = state["tests_passed"], state["modified"]
        self._output_tokens, self._paid = state["output_tokens"], state["paid"]
        self._immediate = list(state["immediate"])
        self._fingerprint = self._tree_fingerprint()


def _int_argument(call: ToolCall, name: str, default: int) -> int:
    value = call.arguments.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidAction(f"{call.name}'s {name!r} must be a whole number.")
    try:
        return int(value)
    except ValueError as err:
        raise InvalidAction(
            f"{call.name}'s {name!r} must be a whole number, got {value!r}."
        ) from err
