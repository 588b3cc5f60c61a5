"""Calendar: a week of day tabs, event details, and a form to add or edit events."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from rounds.envs.gui.device import (
    App,
    Device,
    Route,
    confirm_dialog,
    draft_field,
    go_to,
    switch_to,
)
from rounds.envs.gui.tasks import Step, Task, Template, normalise_answer, opened, pick, visited
from rounds.envs.gui.widgets import ClickHandler, Screen, Widget

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TITLES = (
    "Dentist",
    "Team standup",
    "Yoga class",
    "Lunch with Ana",
    "Project review",
    "Piano lesson",
    "Car service",
    "Book club",
    "Parent meeting",
    "Haircut",
    "Budget planning",
    "Football practice",
    "Doctor appointment",
    "Coffee with Ben",
    "Flight to Lisbon",
    "Garden centre",
    "Quarterly report",
    "Movie night",
)
NEW_TITLES = ("Vet visit", "Tax advisor", "Climbing gym", "Team dinner", "Birthday party")
_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def day_route(day: int) -> Route:
    return ("calendar", "day", str(day))


NEW: Route = ("calendar", "new")


def event_route(event_id: int) -> Route:
    return ("calendar", "event", str(event_id))


def edit_route(event_id: int) -> Route:
    return ("calendar", "edit", str(event_id))


@dataclass
class Event:
    id: int
    title: str
    day: int
    time: str
    location: str = ""


def normalise_time(text: str) -> str | None:
    """``"9:05"`` -> ``"09:05"``; None when the text is not a 24-hour time."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        return None
    return f"{int(match.group(1)):02d}:{match.group(2)}"


@dataclass
class CalendarApp(App):
    """The calendar's state: events, the next event id and the open form's draft."""

    events: list[Event] = field(default_factory=list)
    next_id: int = 1
    draft: dict[str, str] | None = None
    draft_for: int = 0
    """The event the draft edits; 0 for a new event."""
    error: str = ""

    name = "calendar"
    title = "Calendar"

    @classmethod
    def generate(cls, rng: np.random.Generator) -> CalendarApp:
        titles = pick(rng, TITLES, int(rng.integers(8, 13)))
        events = []
        for index, title in enumerate(titles, start=1):
            hour, minute = int(rng.integers(7, 21)), int(rng.choice([0, 15, 30, 45]))
            events.append(Event(index, title, int(rng.integers(7)), f"{hour:02d}:{minute:02d}"))
        return cls(events=events, next_id=len(events) + 1)

    def find(self, title: str) -> Event | None:
        return next((e for e in self.events if e.title.casefold() == title.casefold()), None)

    def by_id(self, event_id: int) -> Event | None:
        return next((e for e in self.events if e.id == event_id), None)

    def root(self) -> Route:
        return day_route(0)

    def parent(self, route: Route) -> tuple[Route, str]:
        kind = route[1]
        if kind == "day":
            if route == day_route(0):
                return ("home",), "app:calendar"
            return day_route(0), f"tab:{route[2]}"
        if kind == "new":
            return day_route(0), "new_event"
        event = self.by_id(int(route[2]))
        if kind == "event":
            return day_route(event.day if event else 0), f"event:{route[2]}"
        return event_route(int(route[2])), "edit"

    def screen(self, route: Route, device: Device) -> Screen:
        kind = route[1]
        if kind == "day":
            return self._day(device, int(route[2]))
        if kind == "new":
            return self._form(device, "New event", 0)
        event = self.by_id(int(route[2]))
        if event is None:
            return Screen("Calendar", [Widget("text", "This event no longer exists.")])
        if kind == "event":
            return self._event(device, event)
        return self._form(device, f"Edit {event.title}", event.id)

    def _day(self, device: Device, day: int) -> Screen:
        tabs = [
            Widget(
                "tab",
                name[:3],
                key=f"tab:{i}",
                checked=i == day,
                on_click=switch_to(device, day_route(i)),
            )
            for i, name in enumerate(DAYS)
        ]
        events = sorted((e for e in self.events if e.day == day), key=lambda e: e.time)

        body: list[Widget] = [Widget("heading", DAYS[day])]
        body += [
            Widget(
                "listitem",
                f"{e.time}  {e.title}",
                key=f"event:{e.id}",
                on_click=go_to(device, event_route(e.id)),
            )
            for e in events
        ]
        if not events:
            body.append(Widget("text", "No events."))
        new = Widget(
            "button",
            "New",
            key="new_event",
            on_click=lambda: self._open_form(device, NEW, None, day),
        )
        return Screen("Calendar", body, actions=[new], tabs=tabs)

    def _open_form(self, device: Device, route: Route, event: Event | None, day: int) -> str:
        if event is None:
            self.draft, self.draft_for = {"title": "", "time": "", "day": str(day)}, 0
        else:
            self.draft = {"title": event.title, "time": event.time, "day": str(event.day)}
            self.draft_for = event.id
        self.error = ""
        device.push(route)
        return ""

    def _event(self, device: Device, event: Event) -> Screen:
        body = [
            Widget("text", f"{DAYS[event.day]} at {event.time}"),
            Widget(
                "button",
                "Edit",
                key="edit",
                on_click=lambda: self._open_form(device, edit_route(event.id), event, event.day),
            ),
            Widget("button", "Delete event", key="delete", on_click=lambda: _ask(device)),
        ]
        screen = Screen(event.title, body)
        if device.modal is not None and device.modal.kind == "delete_event":

            def delete() -> str:
                self.events.remove(event)
                device.pop()
                return f"Deleted {event.title}."

            screen.dialog = confirm_dialog(
                "Delete event?", f"{event.title} will be removed.", "Delete", delete, device
            )
        return screen

    def _form(self, device: Device, title: str, editing: int) -> Screen:
        if self.draft is None or self.draft_for != editing:
            self.draft, self.draft_for = {"title": "", "time": "", "day": "0"}, editing
        draft = self.draft
        chosen = int(draft.get("day", "0"))

        def choose(day: int) -> ClickHandler:
            def select() -> str:
                draft["day"] = str(day)
                device.changed()
                return f"Day: {DAYS[day]}."

            return select

        body = [
            draft_field(device, draft, "title", "Title", 60),
            draft_field(device, draft, "time", "Time (HH:MM)", 5),
            Widget("heading", "Day"),
        ]
        body += [
            Widget(
                "radio",
                name,
                key=f"day:{i}",
                checked=i == chosen,
                on_click=choose(i),
            )
            for i, name in enumerate(DAYS)
        ]
        if self.error:
            body.append(Widget("text", self.error))
        body.append(
            Widget(
                "button",
                "Save",
                key="save",
                enabled=bool(draft["title"].strip()),
                on_click=lambda: self._save(device, editing),
            )
        )
        return Screen(title, body)

    def _save(self, device: Device, editing: int) -> str:
        assert self.draft is not None
        time = normalise_time(self.draft["time"])
        if time is None:
            self.error = "Enter the time as HH:MM (24-hour), e.g. 09:30."
            device.changed()
            return self.error
        title, day = self.draft["title"].strip(), int(self.draft["day"])
        if editing:
            event = self.by_id(editing)
            assert event is not None
            event.title, event.time, event.day = title, time, day
            device.pop()
        else:
            self.events.append(Event(self.next_id, title, day, time))
            self.next_id += 1
            device.pop()
            device.replace(day_route(day))
        self.draft, self.error = None, ""
        return f"Saved {title} on {DAYS[day]} at {time}."


def _ask(device: Device) -> str:
    device.open_modal("delete_event")
    return "Please confirm."


# ------------------------------------------------------------------ templates


def _app(device: Device) -> CalendarApp:
    app: CalendarApp = device.app("calendar")
    return app


def _some_event(device: Device, rng: np.random.Generator) -> Event:
    events = _app(device).events
    return events[int(rng.integers(len(events)))]


def _random_time(rng: np.random.Generator) -> str:
    return f"{int(rng.integers(7, 22)):02d}:{int(rng.choice([0, 10, 20, 30, 40, 50])):02d}"


def _form_plan(d: Device, route: Route, editing: int, wanted: dict[str, str]) -> list[Step]:
    app = _app(d)
    draft = app.draft if app.draft_for == editing and d.route == route else None
    steps = []
    for key, value in wanted.items():
        current = None if draft is None else draft.get(key)
        if key == "day":
            if current != value:
                steps.append(Step(route, f"day:{value}"))
        elif current is None or (normalise_time(current) if key == "time" else current) != value:
            steps.append(Step(route, f"field:{key}", value))
    return steps or [Step(route, "save")]


def _create(device: Device, rng: np.random.Generator) -> Task:
    app = _app(device)
    title = pick(rng, [t for t in NEW_TITLES if app.find(t) is None])[0]
    day, time = int(rng.integers(7)), _random_time(rng)
    before = len(app.events)

    def matches(d: Device) -> list[Event]:
        return [e for e in _app(d).events if e.title.casefold() == title.casefold()]

    def done(d: Device) -> bool:
        found = matches(d)
        return len(found) == 1 and found[0].day == day and found[0].time == time

    return Task(
        goal=f'Add an event "{title}" on {DAYS[day]} at {time}.',
        subgoals=[
            ("calendar open", opened("calendar")),
            ("new event form open", visited(NEW)),
            ("event created", lambda d: bool(matches(d))),
            ("day and time right", done),
        ],
        verify=lambda d, _: done(d) and len(_app(d).events) == before + 1,
        plan=lambda d: (
            []
            if matches(d)
            else _form_plan(d, NEW, 0, {"title": title, "time": time, "day": str(day)})
        ),
    )


def _delete(device: Device, rng: np.random.Generator) -> Task:
    event = _some_event(device, rng)
    event_id, title, day = event.id, event.title, event.day
    others = {e.id for e in _app(device).events} - {event_id}

    def gone(d: Device) -> bool:
        return _app(d).by_id(event_id) is None

    def plan(d: Device) -> list[Step]:
        if gone(d):
            return []
        if d.modal is not None and d.modal.kind == "delete_event":
            return [Step(event_route(event_id), "confirm")]
        return [Step(event_route(event_id), "delete")]

    return Task(
        goal=f'Delete the event "{title}" on {DAYS[day]}.',
        subgoals=[
            ("calendar open", opened("calendar")),
            ("event open", visited(event_route(event_id))),
            ("event deleted", gone),
        ],
        verify=lambda d, _: gone(d) and {e.id for e in _app(d).events} == others,
        plan=plan,
    )


def _edit(what: str) -> Template:
    def make(device: Device, rng: np.random.Generator) -> Task:
        app = _app(device)
        event = _some_event(device, rng)
        event_id, title = event.id, event.title
        if what == "day":
            value = str(int(rng.choice([i for i in range(7) if i != event.day])))
            goal = f'Move "{title}" from {DAYS[event.day]} to {DAYS[int(value)]}.'
        elif what == "time":
            value = _random_time(rng)
            while value == event.time:
                value = _random_time(rng)
            goal = f'Change the time of "{title}" on {DAYS[event.day]} to {value}.'
        else:
            value = pick(rng, [t for t in NEW_TITLES if app.find(t) is None])[0]
            goal = f'Rename the event "{title}" on {DAYS[event.day]} to "{value}".'
        keep = {k: v for k, v in vars(event).items() if k != what}

        def current(d: Device) -> str | None:
            e = _app(d).by_id(event_id)
            return None if e is None else str(getattr(e, what))

        def done(d: Device) -> bool:
            return current(d) == value

        def verify(d: Device, _: str | None) -> bool:
            e = _app(d).by_id(event_id)
            return done(d) and e is not None and all(getattr(e, k) == v for k, v in keep.items())

        def plan(d: Device) -> list[Step]:
            if done(d):
                return []
            return _form_plan(d, edit_route(event_id), event_id, {what: value})

        return Task(
            goal=goal,
            subgoals=[
                ("calendar open", opened("calendar")),
                ("event open", visited(event_route(event_id))),
                (f"{what} changed", done),
            ],
            verify=verify,
            plan=plan,
        )

    return Template(f"calendar.edit_{what}", "calendar", make)


def _time_question(device: Device, rng: np.random.Generator) -> Task:
    event = _some_event(device, rng)
    title, day, time = event.title, event.day, event.time
    route = day_route(day)
    return Task(
        goal=f'At what time is "{title}"? Answer with finish("HH:MM").',
        subgoals=[("calendar open", opened("calendar")), ("event's day shown", visited(route))],
        verify=lambda d, answer: normalise_time(normalise_answer(answer)) == time,
        plan=lambda d: [] if route in d.visited else [Step(route)],
        answer=time,
    )


def _count_question(device: Device, rng: np.random.Generator) -> Task:
    day = int(rng.integers(7))
    count = sum(e.day == day for e in _app(device).events)
    route = day_route(day)
    return Task(
        goal=f'How many events are on {DAYS[day]}? Answer with finish("<number>").',
        subgoals=[("calendar open", opened("calendar")), (f"{DAYS[day]} shown", visited(route))],
        verify=lambda d, answer: normalise_answer(answer) == str(count),
        plan=lambda d: [] if route in d.visited else [Step(route)],
        answer=str(count),
    )


TEMPLATES = (
    Template("calendar.create", "calendar", _create),
    Template("calendar.delete", "calendar", _delete),
    _edit("day"),
    _edit("time"),
    _edit("title"),
    Template("calendar.time_question", "calendar", _time_question),
    Template("calendar.count_question", "calendar", _count_question),
)
