"""Settings: network switches, display, sound, per-app notifications and language."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from rounds.envs.gui.device import App, Device, Route, confirm_dialog, go_to
from rounds.envs.gui.tasks import Step, Task, Template, opened, pick, visited
from rounds.envs.gui.widgets import Screen, Widget

FONT_SIZES = (12, 14, 16, 18, 20)
LANGUAGES = (
    "Deutsch",
    "English",
    "Español",
    "Français",
    "Italiano",
    "Nederlands",
    "Norsk",
    "Polski",
    "Português",
    "Suomi",
    "Svenska",
    "Türkçe",
    "Čeština",
    "Ελληνικά",
)
RINGTONES = (
    "Aurora",
    "Beacon",
    "Bulletin",
    "By the Seaside",
    "Chimes",
    "Circuit",
    "Constellation",
    "Cosmic",
    "Crystals",
    "Hillside",
    "Illuminate",
    "Night Owl",
    "Opening",
    "Playtime",
    "Presto",
    "Radar",
    "Ripples",
    "Sencha",
)
NOTIFYING_APPS = ("Calendar", "Contacts", "Files", "Mail", "Messages", "Music", "Shop", "Weather")

ROOT: Route = ("settings",)
SECTIONS = {
    "network": "Network",
    "display": "Display",
    "sound": "Sound",
    "notifications": "Notifications",
    "language": "Language",
}


def section(name: str) -> Route:
    return ("settings", name)


@dataclass
class SettingsApp(App):
    """The settings app's state."""

    wifi: bool = True
    bluetooth: bool = False
    airplane: bool = False
    dark_mode: bool = False
    font_size: int = 14
    brightness: int = 50
    dnd: bool = False
    volume: int = 5
    ringtone: str = "Opening"
    language: str = "English"
    notifications: dict[str, bool] = field(
        default_factory=lambda: dict.fromkeys(NOTIFYING_APPS, True)
    )

    name = "settings"
    title = "Settings"

    @classmethod
    def generate(cls, rng: np.random.Generator) -> SettingsApp:
        return cls(
            wifi=bool(rng.integers(2)),
            bluetooth=bool(rng.integers(2)),
            dark_mode=bool(rng.integers(2)),
            font_size=int(rng.choice(FONT_SIZES)),
            brightness=int(rng.integers(1, 10)) * 10,
            volume=int(rng.integers(1, 10)),
            ringtone=str(rng.choice(RINGTONES)),
            notifications={app: bool(rng.random() < 0.8) for app in NOTIFYING_APPS},
        )

    def root(self) -> Route:
        return ROOT

    def parent(self, route: Route) -> tuple[Route, str]:
        if route == ROOT:
            return ("home",), "app:settings"
        return ROOT, f"section:{route[1]}"

    def screen(self, route: Route, device: Device) -> Screen:
        if route == ROOT:
            body = [
                Widget(
                    "listitem",
                    label,
                    key=f"section:{name}",
                    on_click=go_to(device, section(name)),
                )
                for name, label in SECTIONS.items()
            ]
            return Screen("Settings", body)
        builder: Callable[[Device], Screen] = getattr(self, f"_{route[1]}")
        return builder(device)

    def _set(self, device: Device, attribute: str, value: object, message: str) -> str:
        setattr(self, attribute, value)
        device.changed()
        return message

    def _network(self, device: Device) -> Screen:
        def toggle(attribute: str, label: str) -> Widget:
            on = bool(getattr(self, attribute))
            return Widget(
                "switch",
                label,
                key=attribute,
                checked=on,
                enabled=attribute == "airplane" or not self.airplane,
                on_click=lambda: self._set(
                    device, attribute, not on, f"{label} is {'off' if on else 'on'}."
                ),
            )

        body = [toggle("airplane", "Airplane mode"), toggle("wifi", "Wi-Fi")]
        body.append(toggle("bluetooth", "Bluetooth"))
        if self.airplane:
            body.append(Widget("text", "Wi-Fi and Bluetooth are off while airplane mode is on."))
        return Screen("Network", body)

    def _display(self, device: Device) -> Screen:
        dark = self.dark_mode
        body = [
            Widget(
                "switch",
                "Dark mode",
                key="dark_mode",
                checked=dark,
                on_click=lambda: self._set(
                    device, "dark_mode", not dark, f"Dark mode is {'off' if dark else 'on'}."
                ),
            ),
            Widget("heading", "Font size"),
        ]
        body += [
            Widget(
                "radio",
                f"{size} pt",
                key=f"font:{size}",
                checked=self.font_size == size,
                on_click=partial(self._set, device, "font_size", size, f"Font size is {size} pt."),
            )
            for size in FONT_SIZES
        ]
        body.append(Widget("text", f"Brightness: {self.brightness}%"))
        body.append(
            Widget(
                "row",
                "",
                children=[
                    _stepper(device, self, "brightness", -10, 0, 100, "Brightness", "%"),
                    _stepper(device, self, "brightness", 10, 0, 100, "Brightness", "%"),
                ],
            )
        )
        return Screen("Display", body)

    def _sound(self, device: Device) -> Screen:
        dnd = self.dnd
        body = [
            Widget(
                "switch",
                "Do Not Disturb",
                key="dnd",
                checked=dnd,
                on_click=lambda: self._set(
                    device, "dnd", not dnd, f"Do Not Disturb is {'off' if dnd else 'on'}."
                ),
            ),
            Widget("text", f"Ring volume: {self.volume} of 10"),
            Widget(
                "row",
                "",
                children=[
                    _stepper(device, self, "volume", -1, 0, 10, "Ring volume", ""),
                    _stepper(device, self, "volume", 1, 0, 10, "Ring volume", ""),
                ],
            ),
            Widget("heading", "Ringtone"),
        ]
        body += [
            Widget(
                "radio",
                tone,
                key=f"ringtone:{tone}",
                checked=self.ringtone == tone,
                on_click=partial(self._set, device, "ringtone", tone, f"Ringtone is {tone}."),
            )
            for tone in RINGTONES
        ]
        return Screen("Sound", body)

    def _notifications(self, device: Device) -> Screen:
        body = [Widget("text", "Apps allowed to send notifications:")]
        for app in NOTIFYING_APPS:
            on = self.notifications[app]
            body.append(
                Widget(
                    "checkbox",
                    app,
                    key=f"notify:{app}",
                    checked=on,
                    on_click=partial(self._notify, device, app, not on),
                )
            )
        return Screen("Notifications", body)

    def _notify(self, device: Device, app: str, on: bool) -> str:
        self.notifications[app] = on
        device.changed()
        return f"Notifications from {app} are {'on' if on else 'off'}."

    def _language(self, device: Device) -> Screen:
        body = [
            Widget(
                "listitem",
                language,
                key=f"language:{language}",
                checked=language == self.language,
                on_click=partial(_ask_language, device, language),
            )
            for language in LANGUAGES
        ]
        screen = Screen("Language", body)
        modal = device.modal
        if modal is not None and modal.kind == "language":
            language = str(modal.data["language"])

            def change() -> str:
                self.language = language
                device.close_modal()
                return f"The language is {language}."

            screen.dialog = confirm_dialog(
                "Change language?", f"Switch the phone to {language}?", "Change", change, device
            )
        return screen


def _ask_language(device: Device, language: str) -> str:
    device.open_modal("language", language=language)
    return f"Confirm the change to {language}."


def _stepper(
    device: Device,
    app: SettingsApp,
    attribute: str,
    delta: int,
    low: int,
    high: int,
    label: str,
    unit: str,
) -> Widget:
    value = int(getattr(app, attribute))
    new = max(low, min(high, value + delta))
    return Widget(
        "button",
        f"{label} {'+' if delta > 0 else '−'}",
        key=f"{attribute}:{'up' if delta > 0 else 'down'}",
        enabled=new != value,
        on_click=lambda: app._set(device, attribute, new, f"{label}: {new}{unit}."),
    )


# ------------------------------------------------------------------ templates


def _settings(device: Device) -> SettingsApp:
    app: SettingsApp = device.app("settings")
    return app


def _theme(device: Device, rng: np.random.Generator) -> Task:
    app = _settings(device)
    dark = bool(rng.integers(2))
    size = int(rng.choice([s for s in FONT_SIZES if s != app.font_size]))
    app.dark_mode = not dark

    def plan(d: Device) -> list[Step]:
        s = _settings(d)
        steps = []
        if s.dark_mode != dark:
            steps.append(Step(section("display"), "dark_mode"))
        if s.font_size != size:
            steps.append(Step(section("display"), f"font:{size}"))
        return steps

    return Task(
        goal=f"Turn {'on' if dark else 'off'} dark mode and set the font size to {size}.",
        subgoals=[
            ("settings open", opened("settings")),
            ("display open", visited(section("display"))),
            (f"dark mode {'on' if dark else 'off'}", lambda d: _settings(d).dark_mode == dark),
            (f"font size {size}", lambda d: _settings(d).font_size == size),
        ],
        verify=lambda d, _: _settings(d).dark_mode == dark and _settings(d).font_size == size,
        plan=plan,
    )


def _switch_task(attribute: str, label: str) -> Template:
    def make(device: Device, rng: np.random.Generator) -> Task:
        app = _settings(device)
        on = bool(rng.integers(2))
        app.airplane = False
        setattr(app, attribute, not on)
        route = section("network")
        return Task(
            goal=f"Turn {label} {'on' if on else 'off'}.",
            subgoals=[
                ("settings open", opened("settings")),
                ("network open", visited(route)),
                (
                    f"{label} {'on' if on else 'off'}",
                    lambda d: getattr(_settings(d), attribute) == on,
                ),
            ],
            verify=lambda d, _: getattr(_settings(d), attribute) == on,
            plan=lambda d: (
                [] if getattr(_settings(d), attribute) == on else [Step(route, attribute)]
            ),
        )

    return Template(f"settings.{attribute}", "settings", make)


def _airplane_off(device: Device, rng: np.random.Generator) -> Task:
    app = _settings(device)
    app.airplane = True
    app.bluetooth = False
    wifi = bool(rng.integers(2))
    app.wifi = not wifi
    route = section("network")

    def plan(d: Device) -> list[Step]:
        s = _settings(d)
        steps = [Step(route, "airplane")] if s.airplane else []
        if not s.bluetooth:
            steps.append(Step(route, "bluetooth"))
        if s.wifi != wifi:
            steps.append(Step(route, "wifi"))
        return steps

    return Task(
        goal=f"Turn off airplane mode, then turn on Bluetooth and turn Wi-Fi {'on' if wifi else 'off'}.",
        subgoals=[
            ("network open", visited(route)),
            ("airplane mode off", lambda d: not _settings(d).airplane),
            ("bluetooth on", lambda d: _settings(d).bluetooth),
            (f"wi-fi {'on' if wifi else 'off'}", lambda d: _settings(d).wifi == wifi),
        ],
        verify=lambda d, _: (
            not _settings(d).airplane and _settings(d).bluetooth and _settings(d).wifi == wifi
        ),
        plan=plan,
    )


def _notifications_off(device: Device, rng: np.random.Generator) -> Task:
    app = _settings(device)
    first, second, keep = pick(rng, NOTIFYING_APPS, 3)
    for name in (first, second, keep):
        app.notifications[name] = True
    others = dict(app.notifications)
    route = section("notifications")

    def expected(d: Device) -> bool:
        now = _settings(d).notifications
        return all(now[a] == (v and a not in (first, second)) for a, v in others.items())

    def plan(d: Device) -> list[Step]:
        now = _settings(d).notifications
        return [Step(route, f"notify:{a}") for a in (first, second) if now[a]]

    return Task(
        goal=f"Turn off notifications from {first} and {second}, and keep {keep}'s on.",
        subgoals=[
            ("notifications open", visited(route)),
            (f"{first} off", lambda d: not _settings(d).notifications[first]),
            (f"{second} off", lambda d: not _settings(d).notifications[second]),
        ],
        verify=lambda d, _: expected(d),
        plan=plan,
    )


def _language_task(device: Device, rng: np.random.Generator) -> Task:
    app = _settings(device)
    language = pick(rng, [lang for lang in LANGUAGES if lang != app.language])[0]
    route = section("language")

    def plan(d: Device) -> list[Step]:
        if _settings(d).language == language:
            return []
        modal = d.modal
        if modal is not None and modal.kind == "language" and modal.data["language"] == language:
            return [Step(route, "confirm")]
        return [Step(route, f"language:{language}")]

    return Task(
        goal=f"Change the phone's language to {language}.",
        subgoals=[
            ("language settings open", visited(route)),
            (f"language {language}", lambda d: _settings(d).language == language),
        ],
        verify=lambda d, _: _settings(d).language == language,
        plan=plan,
    )


def _ringtone(device: Device, rng: np.random.Generator) -> Task:
    app = _settings(device)
    tone = pick(rng, [t for t in RINGTONES[8:] if t != app.ringtone])[0]
    app.dnd = False
    route = section("sound")

    def plan(d: Device) -> list[Step]:
        s = _settings(d)
        steps = [Step(route, f"ringtone:{tone}")] if s.ringtone != tone else []
        return steps + ([Step(route, "dnd")] if not s.dnd else [])

    return Task(
        goal=f'Set the ringtone to "{tone}" and turn on Do Not Disturb.',
        subgoals=[
            ("sound open", visited(route)),
            (f"ringtone {tone}", lambda d: _settings(d).ringtone == tone),
            ("do not disturb on", lambda d: _settings(d).dnd),
        ],
        verify=lambda d, _: _settings(d).ringtone == tone and _settings(d).dnd,
        plan=plan,
    )


def _stepper_task(
    attribute: str, step: int, low: int, high: int, route: Route, what: str
) -> Template:
    def make(device: Device, rng: np.random.Generator) -> Task:
        app = _settings(device)
        current = int(getattr(app, attribute))
        choices = [
            v for v in range(low, high + 1, step) if v != current and abs(v - current) <= 5 * step
        ]
        target = int(rng.choice(choices))
        unit = "%" if attribute == "brightness" else ""

        def plan(d: Device) -> list[Step]:
            value = int(getattr(_settings(d), attribute))
            if value == target:
                return []
            return [Step(route, f"{attribute}:{'up' if value < target else 'down'}")]

        return Task(
            goal=f"Set the {what} to {target}{unit}.",
            subgoals=[
                (f"{route[1]} open", visited(route)),
                (f"{what} {target}", lambda d: getattr(_settings(d), attribute) == target),
            ],
            verify=lambda d, _: getattr(_settings(d), attribute) == target,
            plan=plan,
        )

    return Template(f"settings.{attribute}", "settings", make)


TEMPLATES = (
    Template("settings.theme", "settings", _theme),
    _switch_task("wifi", "Wi-Fi"),
    Template("settings.airplane", "settings", _airplane_off),
    Template("settings.notifications", "settings", _notifications_off),
    Template("settings.language", "settings", _language_task),
    Template("settings.ringtone", "settings", _ringtone),
    _stepper_task("brightness", 10, 0, 100, section("display"), "brightness"),
    _stepper_task("volume", 1, 0, 10, section("sound"), "ring volume"),
)
