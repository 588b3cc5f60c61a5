"""The simulated phone: its apps' state, the navigation stack and the open modal.

A :class:`Device` is the one hidden state of a built-in episode. Every screen
is built from it on demand (:meth:`Device.screen`), so the accessibility text,
the screenshot, the verifier and the sub-goals all read the same state. Widget
handlers change the state and return the message shown to the agent.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from rounds.envs.gui.widgets import ClickHandler, Dialog, Screen, Widget, layout

#: A screen's address: the app's name, then the app's own path (e.g. ``("mail", "message", "3")``).
Route = tuple[str, ...]
HOME: Route = ("home",)


@dataclass
class NavEntry:
    """One screen on the navigation stack and its scroll position."""

    route: Route
    scroll: int = 0


@dataclass
class Modal:
    """An open dialog or menu: what it is for (``kind``) and its data (e.g. a text field)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class App(ABC):
    """A built-in app: its state and how each of its routes looks.

    Subclasses are dataclasses of their state; :meth:`screen` builds the widgets of
    a route with handlers that change that state through the device.
    """

    name: str = ""
    title: str = ""

    @abstractmethod
    def root(self) -> Route:
        """The route the app opens on."""

    @abstractmethod
    def screen(self, route: Route, device: Device) -> Screen:
        """The screen of ``route`` (with the open modal, if it belongs to this app)."""

    @abstractmethod
    def parent(self, route: Route) -> tuple[Route, str]:
        """How a route is reached: the route before it and the key of the widget to click there."""


@dataclass
class Device:
    """Every app's state, the navigation stack, the open modal and the routes visited."""

    apps: dict[str, App]
    stack: list[NavEntry] = field(default_factory=lambda: [NavEntry(HOME)])
    modal: Modal | None = None
    visited: set[Route] = field(default_factory=lambda: {HOME})
    _screen: Screen | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------- navigation

    @property
    def route(self) -> Route:
        return self.stack[-1].route

    def app(self, name: str) -> Any:
        return self.apps[name]

    def changed(self) -> None:
        """Drop the cached screen: the state changed."""
        self._screen = None

    def push(self, route: Route) -> None:
        self.stack.append(NavEntry(route))
        self.visited.add(route)
        self.modal = None
        self.changed()

    def replace(self, route: Route) -> None:
        """Switch the top screen (tabs, or a screen that takes the place of a form)."""
        self.stack[-1] = NavEntry(route)
        self.visited.add(route)
        self.modal = None
        self.changed()

    def pop(self, count: int = 1) -> None:
        for _ in range(count):
            if len(self.stack) > 1:
                self.stack.pop()
        self.modal = None
        self.changed()

    def open_modal(self, kind: str, **data: Any) -> None:
        self.modal = Modal(kind, dict(data))
        self.changed()

    def close_modal(self) -> None:
        self.modal = None
        self.changed()

    def scroll_by(self, pixels: int) -> int:
        """Scroll the top screen; returns how far it moved."""
        screen = self.screen()
        before = screen.scroll
        target = max(0, min(before + pixels, screen.max_scroll))
        self.stack[-1].scroll = target
        self.changed()
        return target - before

    # ---------------------------------------------------------------- screens

    def screen(self) -> Screen:
        """The current screen, laid out (cached until the state changes)."""
        if self._screen is None:
            route = self.route
            built = self._home() if route == HOME else self.apps[route[0]].screen(route, self)
            self._screen = layout(built, self.stack[-1].scroll)
        return self._screen

    def _home(self) -> Screen:
        def opener(app: App) -> Any:
            return lambda: self._launch(app)

        body = [
            Widget("listitem", app.title, key=f"app:{name}", on_click=opener(app))
            for name, app in self.apps.items()
        ]
        return Screen("Home", body, back=False)

    def _launch(self, app: App) -> str:
        self.push(app.root())
        return f"Opened {app.title}."

    def snapshot(self) -> Device:
        """An exact, independent copy of the state (the screen cache is rebuilt)."""
        self._screen = None
        return copy.deepcopy(self)


def confirm_dialog(
    title: str, message: str, confirm_label: str, on_confirm: Any, device: Device
) -> Dialog:
    """A yes/no dialog: ``confirm`` runs ``on_confirm``; ``cancel`` closes it."""

    def cancel() -> str:
        device.close_modal()
        return "Cancelled."

    return Dialog(
        title,
        message,
        [
            Widget("button", "Cancel", key="cancel", on_click=cancel),
            Widget("button", confirm_label, key="confirm", on_click=on_confirm),
        ],
    )


def text_dialog(
    title: str, label: str, device: Device, ok_label: str, on_ok: Any, max_chars: int = 60
) -> Dialog:
    """A dialog with one text field (held in the modal's ``text``) and OK/Cancel."""
    assert device.modal is not None
    modal = device.modal

    def set_text(text: str) -> str:
        modal.data["text"] = text
        device.changed()
        return f"{label}: {text!r}."

    def cancel() -> str:
        device.close_modal()
        return "Cancelled."

    text = str(modal.data.get("text", ""))
    return Dialog(
        title,
        "",
        [
            Widget(
                "textbox",
                label,
                key="field:dialog",
                value=text,
                on_type=set_text,
                max_chars=max_chars,
            ),
            Widget("button", "Cancel", key="cancel", on_click=cancel),
            Widget("button", ok_label, key="ok", on_click=lambda: on_ok(text), enabled=bool(text)),
        ],
    )


def draft_field(
    device: Device, draft: dict[str, str], name: str, label: str, max_chars: int = 80
) -> Widget:
    """A text field bound to one entry of a form's draft (typing replaces the entry)."""

    def set_value(text: str) -> str:
        draft[name] = text
        device.changed()
        return f"{label}: {text!r}."

    return Widget(
        "textbox",
        label,
        key=f"field:{name}",
        value=draft.get(name, ""),
        placeholder=label,
        on_type=set_value,
        max_chars=max_chars,
    )


def go_to(device: Device, route: Route) -> ClickHandler:
    """A click handler that opens ``route`` on top of the current screen."""

    def push() -> str:
        device.push(route)
        return ""

    return push


def switch_to(device: Device, route: Route) -> ClickHandler:
    """A click handler that shows ``route`` in place of the current screen (a tab)."""

    def replace() -> str:
        device.replace(route)
        return ""

    return replace
