"""The ``miniwob`` backend: Farama's MiniWoB++ web tasks in a pooled headless Chromium.

The task pages ship with the ``miniwob`` package and load from ``file://``;
their own JavaScript API (``core.getDOMInfo()``, ``core.elementClick(ref)``,
``WOB_DONE_GLOBAL``, ``WOB_RAW_REWARD_GLOBAL``) gives the DOM and the result.
The DOM becomes the same widgets as the built-in apps (buttons, text fields,
checkboxes, radios, links, headings, text), so the accessibility text and the
action language are the same: ``click(id)`` clicks the element, ``type(id, text)``
focuses a field, clears it and types the keys, ``click(x, y)`` clicks the
element under the point. A task ends by itself when the page says so; the
outcome is MiniWoB's raw reward (1 for success).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import partial
from importlib import resources
from typing import Any

from rounds.envs.gui.backends import Backend, Begun
from rounds.envs.gui.browser import POOL, Browser, BrowserPool
from rounds.envs.gui.tasks import SPLIT_SIZES
from rounds.envs.gui.widgets import Screen, Widget

#: The MiniWoB task area, in CSS pixels.
TASK_WIDTH, TASK_HEIGHT = 160, 210
#: Tasks solvable with clicks and typing on DOM elements (no drawing or dragging).
DEFAULT_TASKS = (
    "click-test",
    "click-test-2",
    "click-button",
    "click-button-sequence",
    "click-link",
    "click-dialog",
    "click-dialog-2",
    "click-checkboxes",
    "click-option",
    "click-tab",
    "click-collapsible-nodelay",
    "enter-text",
    "enter-text-2",
    "enter-password",
    "focus-text",
    "focus-text-2",
    "login-user",
    "navigate-tree",
)
#: Seeds of each split start here, so splits never share a page.
SPLIT_SEED_OFFSET = {"train": 0, "validation": 1_000_000, "test": 2_000_000}
_TEXT_INPUTS = ("text", "password", "email", "number", "search", "tel", "url", "date", "time")
_ROLE_OF_TAG = {
    "button": "button",
    "a": "link",
    "li": "listitem",
    "td": "cell",
    "th": "cell",
    "label": "label",
    "option": "option",
    **{f"h{level}": "heading" for level in range(1, 7)},
}
_DONE = (
    "return [WOB_DONE_GLOBAL, WOB_RAW_REWARD_GLOBAL, WOB_REWARD_REASON === null ? "
    "'' : String(WOB_REWARD_REASON)];"
)
_CLEAR = "var e = core.previousDOMInfo[arguments[0]]; if (e) { e.value = ''; } return !!e;"
_SELECT = (
    "var e = core.previousDOMInfo[arguments[0]]; var wanted = arguments[1].trim().toLowerCase();"
    "for (var i = 0; i < e.options.length; i++) {"
    "  if (e.options[i].text.trim().toLowerCase() === wanted) {"
    "    e.selectedIndex = i; e.dispatchEvent(new Event('change', {bubbles: true})); return true; } }"
    "return false;"
)
_SCROLL = (
    "var area = document.getElementById('area') || document.body;"
    "var before = [area.scrollTop, document.documentElement.scrollTop];"
    "area.scrollTop += arguments[0]; document.documentElement.scrollTop += arguments[0];"
    "return before[0] !== area.scrollTop || before[1] !== document.documentElement.scrollTop;"
)


def task_page(task: str) -> str:
    """The ``file://`` URL of a MiniWoB task page shipped in the ``miniwob`` package."""
    try:
        root = resources.files("miniwob") / "html" / "miniwob"
    except ModuleNotFoundError as err:
        raise RuntimeError(
            "The miniwob backend needs the [gui] extra: pip install 'rounds[gui]'."
        ) from err
    page = root / f"{task}.html"
    if not page.is_file():
        raise ValueError(f"MiniWoB has no task {task!r}")
    return f"file://{page}"


class MiniWoBBackend(Backend):
    """MiniWoB++ tasks in a browser from the process's pool (returned on :meth:`close`).

    Args:
        tasks: MiniWoB task names (default :data:`DEFAULT_TASKS`).
        episode_time_s: MiniWoB's own episode timer (10 s in the benchmark, too short for
            an LLM agent); the page ends the episode with reward -1 after it.
        pool: where browsers come from (default: the process's pool).
    """

    name = "miniwob"

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        episode_time_s: float = 600.0,
        pool: BrowserPool | None = None,
    ) -> None:
        self.pool = pool or POOL
        self.tasks = list(tasks) if tasks is not None else list(DEFAULT_TASKS)
        for task in self.tasks:
            task_page(task)  # unknown names fail here, before a browser starts
        self.episode_time_s = episode_time_s
        self.browser: Browser | None = None
        self.task = ""
        self._page = ""
        self._screen: Screen | None = None
        self._done = False
        self._reward = 0.0
        self.reason = ""

    # --------------------------------------------------------------- tasks

    def task_ids(self, split: str) -> Sequence[str]:
        return [f"{task}-{split}-{i}" for i in range(SPLIT_SIZES[split]) for task in self.tasks]

    def _parse(self, task_id: str) -> tuple[str, int]:
        task, split, index = [*task_id.rsplit("-", 2), "", ""][:3]
        if task not in self.tasks or split not in SPLIT_SIZES or not index.isdigit():
            raise ValueError(
                f"unknown MiniWoB task id {task_id!r}; ids look like 'click-button-train-0' "
                f"(tasks: {', '.join(self.tasks)})"
            )
        return task, SPLIT_SEED_OFFSET[split] + int(index)

    @property
    def driver(self) -> Any:
        if self.browser is None:
            self.browser = self.pool.acquire()
        return self.browser.driver

    def begin(self, task: str) -> Begun:
        name, seed = self._parse(task)
        page = task_page(name)
        driver = self.driver
        if self._page != page:
            driver.get(page)
            self._page = page
        driver.execute_script(
            "core.endEpisode(0); Math.seedrandom(arguments[0]); core.setDataMode('train');"
            "core.EPISODE_MAX_TIME = arguments[1]; core.startEpisodeReal();",
            str(seed),
            int(self.episode_time_s * 1000),
        )
        utterance = driver.execute_script("return core.getUtterance();")
        if isinstance(utterance, dict):
            utterance = utterance.get("utterance", "")
        self.task, self._screen, self._done, self._reward, self.reason = name, None, False, 0.0, ""
        return Begun(goal=str(utterance), subgoal_names=[], info={"miniwob_task": name})

    # --------------------------------------------------------------- screen

    def screen(self) -> Screen:
        if self._screen is None:
            self._screen = self._build_screen()
        return self._screen

    def _build_screen(self) -> Screen:
        screen = Screen(self.task, [], back=False, width=TASK_WIDTH, height=TASK_HEIGHT)
        if not self._done:
            root = self.driver.execute_script("return core.getDOMInfo();")
            self._collect(root, screen.elements, in_label="")
        for index, widget in enumerate(screen.elements, start=1):
            widget.id = index
        screen.body = list(screen.elements)
        return screen

    def _collect(self, node: dict[str, Any], out: list[Widget], in_label: str) -> None:
        tag = str(node.get("tag", "")).lower()
        children = node.get("children") or []
        text = node.get("text")
        if text is None and children and all(c.get("tag") == "t" for c in children):
            text = " ".join(str(c.get("text", "")) for c in children)
            children = []
        text = " ".join(str(text).split()) if text is not None else ""
        if tag == "label":
            label_text = " ".join(
                " ".join(str(c.get("text", "")).split()) for c in children if c.get("tag") == "t"
            )
            for child in children:
                if child.get("tag") != "t":
                    self._collect(child, out, label_text or text)
            if not any(str(c.get("tag", "")).startswith("INPUT") for c in children) and text:
                out.append(self._widget(node, "label", text))
            return
        if tag in ("button", "a") and not text:
            # The accessible name includes text kept off screen for screen readers
            # (jQuery UI's close button is an icon with an off-screen "Close").
            text = _descendant_text(node)
            children = [c for c in children if c.get("tag") != "t"]
        widget = self._element(node, tag, text, in_label)
        if widget is not None:
            out.append(widget)
        for child in children:
            self._collect(child, out, "")

    def _element(self, node: dict[str, Any], tag: str, text: str, in_label: str) -> Widget | None:
        if tag.startswith("input_"):
            kind = tag.removeprefix("input_")
            if kind in ("checkbox", "radio"):
                return self._widget(
                    node, kind, in_label or str(node.get("id") or ""), bool(node.get("value"))
                )
            if kind in ("submit", "button"):
                return self._widget(node, "button", str(node.get("value") or text))
            if kind in _TEXT_INPUTS:
                return self._field(node, in_label or str(node.get("id") or ""))
            return None
        if tag == "textarea":
            return self._field(node, in_label or str(node.get("id") or ""))
        if tag == "select":
            widget = self._widget(node, "combobox", text)
            widget.on_type = partial(self._select, int(node["ref"]))
            return widget
        if tag == "t":
            return Widget("text", text, box=_box(node), visible=_on_screen(node)) if text else None
        if not text and tag != "button":
            return None
        return self._widget(node, _ROLE_OF_TAG.get(tag, "generic"), text)

    def _widget(
        self, node: dict[str, Any], role: str, label: str, checked: bool | None = None
    ) -> Widget:
        return Widget(
            role,
            label,
            key=str(node.get("id") or ""),
            checked=checked,
            on_click=partial(self._click, int(node["ref"])),
            box=_box(node),
            visible=_on_screen(node),
        )

    def _field(self, node: dict[str, Any], label: str) -> Widget:
        return Widget(
            "textbox",
            label,
            key=str(node.get("id") or ""),
            value=str(node.get("value") or ""),
            max_chars=1000,
            on_click=partial(self._click, int(node["ref"])),  # focuses it (focus-text tasks)
            on_type=partial(self._type, int(node["ref"])),
            box=_box(node),
            visible=_on_screen(node),
        )

    # --------------------------------------------------------------- actions

    def _click(self, ref: int) -> str:
        result = self.driver.execute_script("return core.elementClick(arguments[0]);", ref)
        self._after()
        return "" if result is True else f"The click did not register: {result}."

    def _type(self, ref: int, text: str) -> str:
        from selenium.webdriver.common.action_chains import ActionChains

        driver = self.driver
        driver.execute_script("return core.elementClick(arguments[0]);", ref)
        driver.execute_script(_CLEAR, ref)
        if text:
            ActionChains(driver, duration=0).send_keys(text).perform()
        self._after()
        return f"Typed {text!r}."

    def _select(self, ref: int, text: str) -> str:
        found = self.driver.execute_script(_SELECT, ref, text)
        self._after()
        return f"Selected {text!r}." if found else f"There is no option {text!r} in that list."

    def scroll(self, direction: str) -> str:
        moved = self.driver.execute_script(_SCROLL, 100 if direction == "down" else -100)
        self._after()
        return f"Scrolled {direction}." if moved else f"The page cannot scroll further {direction}."

    def back(self) -> str:
        return "A MiniWoB page has no back navigation; act on the page."

    def _after(self) -> None:
        self._screen = None
        done, reward, reason = self.driver.execute_script(_DONE)
        self._done, self._reward, self.reason = bool(done), float(reward or 0.0), str(reason or "")

    def ended(self) -> bool:
        return self._done

    def success(self, answer: str | None) -> bool:
        return self._done and self._reward > 0

    def screenshot(self) -> bytes:
        from PIL import Image

        image = Image.open(io.BytesIO(self.driver.get_screenshot_as_png()))
        buffer = io.BytesIO()
        image.convert("RGB").crop((0, 0, TASK_WIDTH, TASK_HEIGHT)).save(
            buffer, format="PNG", compress_level=1
        )
        return buffer.getvalue()

    def close(self) -> None:
        if self.browser is not None:
            browser, self.browser, self._page = self.browser, None, ""
            self.pool.release(browser)


def _descendant_text(node: dict[str, Any]) -> str:
    parts = [str(node.get("text") or "")]
    parts += [_descendant_text(child) for child in node.get("children") or []]
    return " ".join(" ".join(parts).split())


def _box(node: dict[str, Any]) -> tuple[int, int, int, int]:
    left, top = round(float(node["left"])), round(float(node["top"]))
    return (left, top, left + round(float(node["width"])), top + round(float(node["height"])))


def _on_screen(node: dict[str, Any]) -> bool:
    x1, y1, x2, y2 = _box(node)
    return x1 >= 0 and y1 >= 0 and x2 <= TASK_WIDTH and y2 <= TASK_HEIGHT and x2 > x1 and y2 > y1
