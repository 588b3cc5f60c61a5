"""rounds/GUI-v0 on MiniWoB++ in headless Chromium: same text, same actions, nothing online.

One browser serves the whole module (starting one costs about a second). The
last test closes it and checks that no Chromium process is left and that
nothing tried to leave the machine.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.requires("chromium"), pytest.mark.slow]

miniwob = pytest.importorskip("miniwob", reason="needs the [gui] extra")

from PIL import Image  # noqa: E402

from rounds.envs.gui.browser import PROFILE_PREFIX, BrowserPool  # noqa: E402
from rounds.envs.gui.env import GUIEnv  # noqa: E402
from rounds.envs.gui.miniwob_backend import TASK_HEIGHT, TASK_WIDTH, MiniWoBBackend  # noqa: E402

LINE = re.compile(r'^\[(\d+)\] (\w+)(?: "((?:[^"\\]|\\.)*)")?')


@dataclass
class Session:
    env: GUIEnv
    pool: BrowserPool
    netlog: Path
    connects: list[Any] = field(default_factory=list)
    selenium_manager_calls: list[Any] = field(default_factory=list)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    netlog = tmp_path_factory.mktemp("netlog") / "netlog.json"
    patch = pytest.MonkeyPatch()
    record = Session(env=None, pool=None, netlog=netlog)  # type: ignore[arg-type]
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        record.connects.append(address)
        return real_connect(sock, address)

    patch.setattr(socket.socket, "connect", connect)
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        record.selenium_manager_calls.append(args)
        raise RuntimeError("Selenium Manager must not run")

    patch.setattr(SeleniumManager, "binary_paths", forbidden)
    record.pool = BrowserPool(extra_arguments=(f"--log-net-log={netlog}",))
    record.env = GUIEnv(backend=MiniWoBBackend(pool=record.pool), observation="both")
    try:
        yield record
    finally:
        record.env.close()
        record.pool.close_all()
        patch.undo()


def listed(observation: str) -> list[tuple[int, str, str]]:
    out = []
    for line in observation.splitlines():
        match = LINE.match(line.strip())
        if match:
            out.append((int(match.group(1)), match.group(2), match.group(3) or ""))
    return out


def test_click_button_is_solved_through_the_action_language(session: Session) -> None:
    env = session.env
    observation, info = env.reset(options={"task_id": "click-button-train-5"})
    wanted = re.search(r'"(.+?)"', observation.splitlines()[0])
    assert wanted is not None and info["miniwob_task"] == "click-button"
    target = next(
        i for i, role, label in listed(observation) if role == "button" and label == wanted.group(1)
    )
    _, reward, terminated, _, info = env.step(f"click({target})")
    assert terminated and info["outcome"] == 1.0 and float(reward) == 1.0


def test_a_wrong_click_fails_the_task(session: Session) -> None:
    env = session.env
    observation, _ = env.reset(options={"task_id": "click-button-train-6"})
    wanted = re.search(r'"(.+?)"', observation.splitlines()[0])
    assert wanted is not None
    other = next(
        i for i, role, label in listed(observation) if role == "button" and label != wanted.group(1)
    )
    _, _, terminated, _, info = env.step(f"click({other})")
    assert terminated and info["outcome"] == 0.0 and info["metrics"]["success"] == 0.0


def test_typing_and_json_tool_calls_log_a_user_in(session: Session) -> None:
    env = session.env
    observation, _ = env.reset(options={"task_id": "login-user-train-1"})
    username, password = re.findall(r'"(.*?)"', observation.splitlines()[0])[:2]
    fields = {label: i for i, role, label in listed(observation) if role == "textbox"}
    for name, text in (("username", username), ("password", password)):
        call = {"name": "type", "arguments": {"id": fields[name], "text": text}}
        observation, _, _, _, info = env.step(json.dumps(call))
        assert not info["invalid_action"]
    assert f'value="{username}"' in observation
    login = next(i for i, role, label in listed(observation) if role == "button")
    _, _, terminated, _, info = env.step(f'{{"name": "click", "arguments": {{"id": {login}}}}}')
    assert terminated and info["outcome"] == 1.0


def test_checkbox_state_shows_in_the_tree_and_coordinates_click(session: Session) -> None:
    env = session.env
    observation, _ = env.reset(options={"task_id": "click-checkboxes-train-2"})
    boxes = [i for i, role, _ in listed(observation) if role == "checkbox"]
    widget = env.backend.screen().by_id(boxes[0])
    assert widget is not None and widget.checked is False
    x1, y1, x2, y2 = widget.box
    observation, _, _, _, info = env.step(f"click({(x1 + x2) // 2}, {(y1 + y2) // 2})")
    assert not info["invalid_action"]
    assert env.backend.screen().by_id(boxes[0]).checked is True  # type: ignore[union-attr]
    assert re.search(rf"\[{boxes[0]}\] checkbox .* checked", observation)


def test_bad_input_on_the_web(session: Session) -> None:
    env = session.env
    observation, _ = env.reset(options={"task_id": "enter-text-train-0"})
    button = next(i for i, role, _ in listed(observation) if role == "button")
    cases = {
        "click(500, 10)": "outside the 160x210 screen",
        "click(77)": "no element [77]",
        f'type({button}, "hello")': "not a text field",
        '{"name": "type", "arguments": {"id": 1, "text": "' + "x" * 2000 + '"}}': "at most 1000",
        '{"name": "click"': "not valid JSON",
    }
    for action, says in cases.items():
        observation, _, terminated, _, info = env.step(action)
        assert info["invalid_action"] and says in observation and not terminated
    observation, _, _, _, info = env.step("back()")
    assert not info["invalid_action"] and "no back navigation" in observation


def test_same_task_id_same_page_and_a_screenshot_of_the_task_area(session: Session) -> None:
    env = session.env
    first, info = env.reset(options={"task_id": "click-tab-train-3"})
    second, info = env.reset(options={"task_id": "click-tab-train-3"})
    assert first == second
    image = Image.open(io.BytesIO(info["screenshot"]))
    assert image.format == "PNG" and image.size == (TASK_WIDTH, TASK_HEIGHT)
    other, _ = env.reset(options={"task_id": "click-tab-test-3"})
    assert other != first


def test_icon_buttons_get_their_accessible_name_and_clicking_a_field_focuses_it(
    session: Session,
) -> None:
    env = session.env
    observation, _ = env.reset(options={"task_id": "click-dialog-train-0"})
    close = next(
        i for i, role, label in listed(observation) if role == "button" and label == "Close"
    )
    _, _, terminated, _, info = env.step(f"click({close})")
    assert terminated and info["outcome"] == 1.0
    observation, _ = env.reset(options={"task_id": "focus-text-train-0"})
    field = next(i for i, role, _ in listed(observation) if role == "textbox")
    _, _, terminated, _, info = env.step(f"click({field})")
    assert terminated and info["outcome"] == 1.0


def test_zz_browsers_closed_and_nothing_left_the_machine(session: Session) -> None:
    """Runs last: closes the module's browser, then audits processes and traffic."""
    session.env.close()
    session.pool.close_all()
    assert session.pool.size == 0
    leftovers = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if PROFILE_PREFIX in command and "pytest" not in command:
                leftovers.append((pid, command[:120]))
    assert leftovers == []
    # The test process spoke only to chromedriver on loopback; Selenium Manager never ran.
    assert session.selenium_manager_calls == []
    for address in session.connects:
        host = address[0] if isinstance(address, tuple) else address
        assert isinstance(host, str) and (
            host == "localhost" or ipaddress.ip_address(host).is_loopback
        )
    # Chromium's own log of its network stack: no TCP connection to anything outside the
    # machine and no byte sent on any socket (its resolver maps every name to "not found").
    log = json.loads(session.netlog.read_text())
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    events = [(names[e["type"]], e.get("params") or {}) for e in log["events"]]
    assert events, "the net log is empty"
    for name, params in events:
        if name == "TCP_CONNECT" and "address" in params:
            host = params["address"].rsplit(":", 1)[0].strip("[]")
            assert ipaddress.ip_address(host).is_loopback, params
        assert name not in ("SOCKET_BYTES_SENT", "UDP_BYTES_SENT"), (name, params)
    # Chromium's own services (component updates, sign-in) do try, and fail at the resolver:
    # no server ever answered.
    assert [p for n, p in events if n == "HTTP_TRANSACTION_READ_RESPONSE_HEADERS"] == []
