"""Mail: inbox, starred and sent tabs, a message screen with a menu, and a compose form."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from rounds.envs.gui.apps.people import Person
from rounds.envs.gui.device import App, Device, Route, confirm_dialog, draft_field, switch_to
from rounds.envs.gui.tasks import Step, Task, Template, normalise_answer, opened, visited
from rounds.envs.gui.widgets import Screen, Widget

INBOX: Route = ("mail", "inbox")
STARRED: Route = ("mail", "starred")
SENT: Route = ("mail", "sent")
COMPOSE: Route = ("mail", "compose")
TABS = ((INBOX, "Inbox"), (STARRED, "Starred"), (SENT, "Sent"))
SUBJECTS = (
    ("Receipt #{n}", "Thank you for your purchase. Your receipt number is {n}."),
    ("Lunch on Friday?", "Are you free for lunch on Friday around noon?"),
    ("Quarterly numbers", "Attached are the quarterly numbers we discussed."),
    ("Trip photos", "Here are the photos from our trip. Enjoy!"),
    ("Invoice {n}", "Please find invoice {n} attached. Payment is due in 30 days."),
    ("Meeting notes", "Notes from today's meeting are below."),
    ("Book recommendation", "You should read the novel I mentioned."),
    ("Flight confirmation {n}", "Your booking {n} is confirmed."),
    ("Party this weekend", "We are having a small party on Saturday."),
    ("Question about the report", "Could you check page 4 of the report?"),
    ("Rent reminder", "A friendly reminder that the rent is due on the 1st."),
    ("Welcome aboard", "Welcome to the team! Your first day is Monday."),
    ("Password changed", "Your password was changed. Contact us if this was not you."),
    ("Concert tickets", "I got two tickets for the concert next month."),
)
REPLIES = ("Sounds good, thanks!", "I will be there.", "Thanks, I will take a look.", "Great news!")


def message_route(message_id: int) -> Route:
    return ("mail", "message", str(message_id))


@dataclass
class Message:
    id: int
    sender: str
    address: str
    subject: str
    body: str
    read: bool = False
    starred: bool = False
    folder: str = "inbox"
    """``inbox``, ``archive`` or ``trash``."""


@dataclass
class Sent:
    to: str
    subject: str
    body: str
    reply_to: int = 0
    forward_of: int = 0


@dataclass
class MailApp(App):
    """The mail app's state: received and sent messages and the compose draft."""

    messages: list[Message] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    draft: dict[str, str] | None = None
    draft_reply_to: int = 0
    draft_forward_of: int = 0

    name = "mail"
    title = "Mail"

    @classmethod
    def generate(cls, people: list[Person], rng: np.random.Generator) -> MailApp:
        count = int(rng.integers(9, 14))
        chosen = rng.choice(len(SUBJECTS), size=count, replace=False)
        messages = []
        for index, pick_index in enumerate(chosen, start=1):
            subject, body = SUBJECTS[int(pick_index)]
            number = str(int(rng.integers(1000, 10000)))
            person = people[int(rng.integers(len(people)))]
            messages.append(
                Message(
                    index,
                    person.name,
                    person.email,
                    subject.format(n=number),
                    body.format(n=number),
                    read=bool(rng.random() < 0.5),
                    starred=bool(rng.random() < 0.2),
                )
            )
        return cls(messages=messages)

    def by_id(self, message_id: int) -> Message | None:
        return next((m for m in self.messages if m.id == message_id), None)

    def root(self) -> Route:
        return INBOX

    def parent(self, route: Route) -> tuple[Route, str]:
        if route == INBOX:
            return ("home",), "app:mail"
        if route in (STARRED, SENT):
            return INBOX, f"tab:{route[1]}"
        if route == COMPOSE:
            return INBOX, "compose"
        return INBOX, f"message:{route[2]}"

    def screen(self, route: Route, device: Device) -> Screen:
        if route in (INBOX, STARRED, SENT):
            return self._folder(device, route)
        if route == COMPOSE:
            return self._compose(device)
        message = self.by_id(int(route[2]))
        if message is None or message.folder == "trash":
            return Screen("Mail", [Widget("text", "This message was deleted.")])
        return self._message(device, message)

    def _folder(self, device: Device, route: Route) -> Screen:
        tabs = [
            Widget(
                "tab", label, key=f"tab:{r[1]}", checked=r == route, on_click=switch_to(device, r)
            )
            for r, label in TABS
        ]
        body: list[Widget] = []
        if route == SENT:
            body = [Widget("text", f"To {s.to}: {s.subject}") for s in reversed(self.sent)]
        else:
            shown = [
                m
                for m in reversed(self.messages)
                if m.folder == "inbox" and (route == INBOX or m.starred)
            ]
            body = [
                Widget(
                    "listitem",
                    f"{'' if m.read else '● '}{m.sender}: {m.subject}{' ★' if m.starred else ''}",
                    key=f"message:{m.id}",
                    on_click=partial(self._open, device, m),
                )
                for m in shown
            ]
        if not body:
            body = [Widget("text", "Nothing here.")]
        compose = Widget(
            "button", "Compose", key="compose", on_click=lambda: self._start_draft(device, {}, 0, 0)
        )
        return Screen("Mail", body, actions=[compose], tabs=tabs)

    def _open(self, device: Device, message: Message) -> str:
        message.read = True
        device.push(message_route(message.id))
        return ""

    def _start_draft(
        self, device: Device, values: dict[str, str], reply_to: int, forward_of: int
    ) -> str:
        self.draft = {"to": "", "subject": "", "body": "", **values}
        self.draft_reply_to, self.draft_forward_of = reply_to, forward_of
        device.push(COMPOSE)
        return ""

    def _message(self, device: Device, message: Message) -> Screen:
        def toggle_star() -> str:
            message.starred = not message.starred
            device.changed()
            return "Starred." if message.starred else "Star removed."

        body = [
            Widget("text", f"From: {message.sender} <{message.address}>"),
            Widget("text", message.body),
            Widget(
                "checkbox", "Starred", key="star", checked=message.starred, on_click=toggle_star
            ),
            Widget(
                "row",
                "",
                children=[
                    Widget(
                        "button",
                        "Reply",
                        key="reply",
                        on_click=lambda: self._start_draft(
                            device,
                            {"to": message.address, "subject": f"Re: {message.subject}"},
                            message.id,
                            0,
                        ),
                    ),
                    Widget(
                        "button",
                        "Forward",
                        key="forward",
                        on_click=lambda: self._start_draft(
                            device,
                            {
                                "subject": f"Fwd: {message.subject}",
                                "body": f"---- Forwarded message ----\n{message.body}",
                            },
                            0,
                            message.id,
                        ),
                    ),
                ],
            ),
        ]
        more = Widget("button", "More", key="menu", on_click=lambda: _open_menu(device))
        screen = Screen(message.subject, body, actions=[more])
        modal = device.modal
        if modal is not None and modal.kind == "message_menu":
            screen.menu = [
                Widget(
                    "menuitem",
                    "Archive",
                    key="archive",
                    on_click=lambda: self._move(device, message, "archive"),
                ),
                Widget(
                    "menuitem",
                    "Delete",
                    key="delete",
                    on_click=lambda: _ask(device, "delete_message"),
                ),
                Widget(
                    "menuitem",
                    "Mark as unread",
                    key="mark_unread",
                    on_click=lambda: self._mark_unread(device, message),
                ),
            ]
        if modal is not None and modal.kind == "delete_message":
            screen.dialog = confirm_dialog(
                "Delete message?",
                f'"{message.subject}" will be moved to the trash.',
                "Delete",
                lambda: self._move(device, message, "trash"),
                device,
            )
        return screen

    def _move(self, device: Device, message: Message, folder: str) -> str:
        message.folder = folder
        device.pop()
        return "Archived." if folder == "archive" else "Moved to the trash."

    def _mark_unread(self, device: Device, message: Message) -> str:
        message.read = False
        device.pop()
        return "Marked as unread."

    def _compose(self, device: Device) -> Screen:
        if self.draft is None:
            self.draft = {"to": "", "subject": "", "body": ""}
        draft = self.draft
        body = [
            draft_field(device, draft, "to", "To", 80),
            draft_field(device, draft, "subject", "Subject", 120),
            draft_field(device, draft, "body", "Message", 2000),
            Widget(
                "button",
                "Send",
                key="send",
                enabled="@" in draft["to"],
                on_click=lambda: self._send(device),
            ),
        ]
        return Screen("New message", body)

    def _send(self, device: Device) -> str:
        assert self.draft is not None
        draft = {k: v.strip() for k, v in self.draft.items()}
        self.sent.append(
            Sent(
                draft["to"],
                draft["subject"],
                draft["body"],
                self.draft_reply_to,
                self.draft_forward_of,
            )
        )
        self.draft = None
        device.pop()
        return f"Sent to {draft['to']}."


def _open_menu(device: Device) -> str:
    device.open_modal("message_menu")
    return ""


def _ask(device: Device, kind: str) -> str:
    device.open_modal(kind)
    return "Please confirm."


# ------------------------------------------------------------------ templates


def _app(device: Device) -> MailApp:
    app: MailApp = device.app("mail")
    return app


def _contacts(device: Device) -> list[Person]:
    people = []
    for contact in device.app("contacts").contacts:
        people.append(Person(contact.name, contact.phone, contact.email))
    return people


def _some_message(device: Device, rng: np.random.Generator) -> Message:
    messages = _app(device).messages
    return messages[int(rng.integers(len(messages)))]


def _compose_plan(
    d: Device, wanted: dict[str, str], entry: Step, reply_to: int = 0, forward_of: int = 0
) -> list[Step]:
    app = _app(d)
    draft = app.draft if d.route == COMPOSE else None
    if draft is None or app.draft_reply_to != reply_to or app.draft_forward_of != forward_of:
        return [entry]
    steps = [
        Step(COMPOSE, f"field:{k}", v) for k, v in wanted.items() if draft.get(k, "").strip() != v
    ]
    return steps or [Step(COMPOSE, "send")]


def _matching_sent(d: Device, to: str, subject: str, body: str | None) -> list[Sent]:
    return [
        s
        for s in _app(d).sent
        if s.to.casefold() == to.casefold()
        and s.subject.strip().casefold() == subject.casefold()
        and (body is None or body.casefold() in s.body.casefold())
    ]


def _send(with_body: bool) -> Template:
    def make(device: Device, rng: np.random.Generator) -> Task:
        people = _contacts(device)
        person = people[int(rng.integers(len(people)))]
        subject = ("Weekend plans", "Project update", "Quick question", "Photos")[
            int(rng.integers(4))
        ]
        text = REPLIES[int(rng.integers(len(REPLIES)))] if with_body else None
        wanted = {"to": person.email, "subject": subject} | ({"body": text} if text else {})

        def plan(d: Device) -> list[Step]:
            if _matching_sent(d, person.email, subject, text):
                return []
            return _compose_plan(d, wanted, Step(INBOX, "compose"))

        extra = f' saying "{text}"' if text else ""
        return Task(
            goal=f'Send an email to {person.name} ({person.email}) with the subject "{subject}"{extra}.',
            subgoals=[
                ("mail open", opened("mail")),
                ("compose open", visited(COMPOSE)),
                ("email sent", lambda d: bool(_matching_sent(d, person.email, subject, text))),
            ],
            verify=lambda d, _: (
                len(_matching_sent(d, person.email, subject, text)) == 1 and len(_app(d).sent) == 1
            ),
            plan=plan,
        )

    return Template("mail.send_message" if with_body else "mail.send", "mail", make)


def _star(device: Device, rng: np.random.Generator) -> Task:
    message = _some_message(device, rng)
    message.starred, message.folder = False, "inbox"
    mid = message.id
    return Task(
        goal=f'Star the email from {message.sender} with the subject "{message.subject}".',
        subgoals=[
            ("mail open", opened("mail")),
            ("message open", visited(message_route(mid))),
            ("starred", lambda d: _msg(d, mid).starred),
        ],
        verify=lambda d, _: _msg(d, mid).starred and _msg(d, mid).folder == "inbox",
        plan=lambda d: [] if _msg(d, mid).starred else [Step(message_route(mid), "star")],
    )


def _msg(d: Device, message_id: int) -> Message:
    message = _app(d).by_id(message_id)
    assert message is not None
    return message


def _move_task(folder: str) -> Template:
    def make(device: Device, rng: np.random.Generator) -> Task:
        message = _some_message(device, rng)
        mid = message.id
        others = {m.id: m.folder for m in _app(device).messages if m.id != mid}

        def plan(d: Device) -> list[Step]:
            if _msg(d, mid).folder == folder:
                return []
            route = message_route(mid)
            if d.modal is not None and d.modal.kind == "delete_message":
                return [Step(route, "confirm")]
            if d.modal is not None and d.modal.kind == "message_menu":
                return [Step(route, "archive" if folder == "archive" else "delete")]
            return [Step(route, "menu")]

        verb = "Archive" if folder == "archive" else "Delete"
        return Task(
            goal=f'{verb} the email from {message.sender} with the subject "{message.subject}".',
            subgoals=[
                ("mail open", opened("mail")),
                ("message open", visited(message_route(mid))),
                (f"message in {folder}", lambda d: _msg(d, mid).folder == folder),
            ],
            verify=lambda d, _: (
                _msg(d, mid).folder == folder
                and all(_msg(d, i).folder == f for i, f in others.items())
            ),
            plan=plan,
        )

    return Template(f"mail.{'archive' if folder == 'archive' else 'delete'}", "mail", make)


def _mark_unread(device: Device, rng: np.random.Generator) -> Task:
    message = _some_message(device, rng)
    message.read, mid = True, message.id

    def plan(d: Device) -> list[Step]:
        m = _msg(d, mid)
        if not m.read and message_route(mid) in d.visited:
            return []
        route = message_route(mid)
        if d.modal is not None and d.modal.kind == "message_menu":
            return [Step(route, "mark_unread")]
        return [Step(route, "menu")]

    return Task(
        goal=f'Mark the email "{message.subject}" from {message.sender} as unread.',
        subgoals=[
            ("message open", visited(message_route(mid))),
            ("unread", lambda d: not _msg(d, mid).read),
        ],
        verify=lambda d, _: not _msg(d, mid).read and _msg(d, mid).folder == "inbox",
        plan=plan,
    )


def _reply(device: Device, rng: np.random.Generator) -> Task:
    message = _some_message(device, rng)
    mid, text = message.id, REPLIES[int(rng.integers(len(REPLIES)))]
    subject = f"Re: {message.subject}"

    def done(d: Device) -> bool:
        return any(s.reply_to == mid for s in _matching_sent(d, message.address, subject, text))

    return Task(
        goal=f'Reply to {message.sender}\'s email "{message.subject}" with the message "{text}".',
        subgoals=[
            ("message open", visited(message_route(mid))),
            ("reply open", visited(COMPOSE)),
            ("reply sent", done),
        ],
        verify=lambda d, _: done(d) and len(_app(d).sent) == 1,
        plan=lambda d: (
            []
            if done(d)
            else _compose_plan(d, {"body": text}, Step(message_route(mid), "reply"), reply_to=mid)
        ),
    )


def _forward(device: Device, rng: np.random.Generator) -> Task:
    receipts = [
        m for m in _app(device).messages if m.subject.startswith(("Receipt", "Invoice", "Flight"))
    ]
    message = receipts[int(rng.integers(len(receipts)))] if receipts else _some_message(device, rng)
    people = [p for p in _contacts(device) if p.email != message.address]
    person = people[int(rng.integers(len(people)))]
    mid, subject = message.id, f"Fwd: {message.subject}"

    def done(d: Device) -> bool:
        return any(s.forward_of == mid for s in _matching_sent(d, person.email, subject, None))

    return Task(
        goal=f'Forward the email "{message.subject}" to {person.name} ({person.email}).',
        subgoals=[
            ("message open", visited(message_route(mid))),
            ("forward open", visited(COMPOSE)),
            ("forwarded", done),
        ],
        verify=lambda d, _: done(d) and len(_app(d).sent) == 1,
        plan=lambda d: (
            []
            if done(d)
            else _compose_plan(
                d, {"to": person.email}, Step(message_route(mid), "forward"), forward_of=mid
            )
        ),
    )


def _unread_question(device: Device, rng: np.random.Generator) -> Task:
    count = sum(not m.read and m.folder == "inbox" for m in _app(device).messages)
    return Task(
        goal='How many unread emails (marked ●) are in the inbox? Answer with finish("<number>") without opening any.',
        subgoals=[("inbox open", visited(INBOX))],
        verify=lambda d, answer: normalise_answer(answer) == str(count),
        plan=lambda d: [] if INBOX in d.visited else [Step(INBOX)],
        answer=str(count),
    )


TEMPLATES = (
    _send(False),
    _send(True),
    Template("mail.star", "mail", _star),
    _move_task("archive"),
    _move_task("trash"),
    Template("mail.mark_unread", "mail", _mark_unread),
    Template("mail.reply", "mail", _reply),
    Template("mail.forward", "mail", _forward),
    Template("mail.unread_question", "mail", _unread_question),
)
