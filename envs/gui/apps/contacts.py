"""Contacts: a scrolling list, a details screen, an edit form, favourites and deletion."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from rounds.envs.gui.apps.people import FIRST_NAMES, LAST_NAMES, Person, new_phone
from rounds.envs.gui.device import App, Device, Route, confirm_dialog, draft_field, go_to
from rounds.envs.gui.tasks import Step, Task, Template, digits, normalise_answer, opened, visited
from rounds.envs.gui.widgets import Screen, Widget

ROOT: Route = ("contacts",)
NEW: Route = ("contacts", "new")


def detail(name: str) -> Route:
    return ("contacts", "detail", name)


def edit(name: str) -> Route:
    return ("contacts", "edit", name)


@dataclass
class Contact:
    name: str
    phone: str
    email: str = ""
    favorite: bool = False


@dataclass
class ContactsApp(App):
    """The contacts app's state: the contacts and the open form's draft."""

    contacts: list[Contact] = field(default_factory=list)
    draft: dict[str, str] | None = None
    draft_for: str | None = None
    """The contact the draft edits; ``""`` for a new contact."""

    name = "contacts"
    title = "Contacts"

    @classmethod
    def generate(cls, people: list[Person], rng: np.random.Generator) -> ContactsApp:
        contacts = [
            Contact(p.name, p.phone, p.email, favorite=bool(rng.random() < 0.25)) for p in people
        ]
        return cls(contacts=contacts)

    def find(self, name: str) -> Contact | None:
        return next((c for c in self.contacts if c.name == name), None)

    def root(self) -> Route:
        return ROOT

    def parent(self, route: Route) -> tuple[Route, str]:
        if route == ROOT:
            return ("home",), "app:contacts"
        if route == NEW:
            return ROOT, "new_contact"
        if route[1] == "detail":
            return ROOT, f"contact:{route[2]}"
        return detail(route[2]), "edit"

    def screen(self, route: Route, device: Device) -> Screen:
        if route == ROOT:
            return self._list(device)
        if route == NEW:
            return self._form(device, "New contact", "")
        contact = self.find(route[2])
        if contact is None:  # deleted or renamed while below on the stack
            return Screen("Contacts", [Widget("text", "This contact no longer exists.")])
        if route[1] == "detail":
            return self._detail(device, contact)
        return self._form(device, f"Edit {contact.name}", contact.name)

    def _list(self, device: Device) -> Screen:
        body = [
            Widget(
                "listitem",
                f"{'★ ' if c.favorite else ''}{c.name}",
                key=f"contact:{c.name}",
                on_click=go_to(device, detail(c.name)),
            )
            for c in sorted(self.contacts, key=lambda c: c.name)
        ]
        if not body:
            body = [Widget("text", "No contacts yet.")]
        new = Widget(
            "button", "New", key="new_contact", on_click=lambda: self._open_form(device, NEW, None)
        )
        return Screen("Contacts", body, actions=[new])

    def _open_form(self, device: Device, route: Route, contact: Contact | None) -> str:
        if contact is None:
            self.draft, self.draft_for = {"name": "", "phone": "", "email": ""}, ""
        else:
            self.draft = {"name": contact.name, "phone": contact.phone, "email": contact.email}
            self.draft_for = contact.name
        device.push(route)
        return ""

    def _detail(self, device: Device, contact: Contact) -> Screen:
        def toggle_favorite() -> str:
            contact.favorite = not contact.favorite
            device.changed()
            return f"{contact.name} is {'now' if contact.favorite else 'no longer'} a favorite."

        body = [
            Widget("text", f"Phone: {contact.phone}"),
            Widget("text", f"Email: {contact.email or '(none)'}"),
            Widget(
                "checkbox",
                "Favorite",
                key="favorite",
                checked=contact.favorite,
                on_click=toggle_favorite,
            ),
            Widget(
                "button",
                "Edit",
                key="edit",
                on_click=lambda: self._open_form(device, edit(contact.name), contact),
            ),
            Widget(
                "button",
                "Delete contact",
                key="delete",
                on_click=lambda: _ask(device, "delete_contact"),
            ),
        ]
        screen = Screen(contact.name, body)
        if device.modal is not None and device.modal.kind == "delete_contact":

            def delete() -> str:
                self.contacts.remove(contact)
                device.pop()
                return f"Deleted {contact.name}."

            screen.dialog = confirm_dialog(
                "Delete contact?", f"{contact.name} will be removed.", "Delete", delete, device
            )
        return screen

    def _form(self, device: Device, title: str, editing: str) -> Screen:
        if self.draft is None or self.draft_for != editing:
            self.draft = {"name": "", "phone": "", "email": ""}
            self.draft_for = editing
        draft = self.draft
        taken = {c.name for c in self.contacts} - {editing}
        name = draft["name"].strip()
        body = [
            draft_field(device, draft, "name", "Name", 60),
            draft_field(device, draft, "phone", "Phone", 30),
            draft_field(device, draft, "email", "Email", 80),
        ]
        if name in taken:
            body.append(Widget("text", f"A contact named {name} already exists."))
        body.append(
            Widget(
                "button",
                "Save",
                key="save",
                enabled=bool(name) and name not in taken,
                on_click=lambda: self._save(device, editing),
            )
        )
        return Screen(title, body)

    def _save(self, device: Device, editing: str) -> str:
        assert self.draft is not None
        values = {k: v.strip() for k, v in self.draft.items()}
        if editing:
            contact = self.find(editing)
            assert contact is not None
            contact.name, contact.phone, contact.email = (
                values["name"],
                values["phone"],
                values["email"],
            )
            device.pop(2)
            device.push(detail(contact.name))
        else:
            self.contacts.append(Contact(values["name"], values["phone"], values["email"]))
            device.pop()
        self.draft, self.draft_for = None, None
        return f"Saved {values['name']}."


def _ask(device: Device, kind: str) -> str:
    device.open_modal(kind)
    return "Please confirm."


# ------------------------------------------------------------------ templates


def _app(device: Device) -> ContactsApp:
    app: ContactsApp = device.app("contacts")
    return app


def _existing(device: Device, rng: np.random.Generator) -> Contact:
    contacts = _app(device).contacts
    return contacts[int(rng.integers(len(contacts)))]


def _new_name(device: Device, rng: np.random.Generator) -> str:
    taken = {c.name.split()[0] for c in _app(device).contacts}
    first = [n for n in FIRST_NAMES if n not in taken]
    return (
        f"{first[int(rng.integers(len(first)))]} {LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]}"
    )


def _form_plan(
    d: Device, route: Route, editing: str, wanted: dict[str, str], entry: Step | None = None
) -> list[Step]:
    """Fill the form's fields that differ from ``wanted``, then save."""
    app = _app(d)
    draft = app.draft if app.draft_for == editing and d.route == route else None
    if draft is None and entry is not None:
        return [entry]
    steps = [
        Step(route, f"field:{k}", v)
        for k, v in wanted.items()
        if draft is None or draft.get(k, "") != v
    ]
    return steps or [Step(route, "save")]


def _add(with_email: bool) -> Template:
    def make(device: Device, rng: np.random.Generator) -> Task:
        name, phone = _new_name(device, rng), new_phone(rng)
        email = f"{name.split()[0].lower()}@mail.example.org" if with_email else ""
        before = len(_app(device).contacts)
        wanted = {"name": name, "phone": phone} | ({"email": email} if with_email else {})

        def saved(d: Device) -> bool:
            c = _app(d).find(name)
            return c is not None and digits(c.phone) == digits(phone)

        def verify(d: Device, _: str | None) -> bool:
            c = _app(d).find(name)
            ok = saved(d) and len(_app(d).contacts) == before + 1
            return ok and (not with_email or (c is not None and c.email.casefold() == email))

        def plan(d: Device) -> list[Step]:
            return [] if _app(d).find(name) else _form_plan(d, NEW, "", wanted)

        extra = f" and email {email}" if with_email else ""
        return Task(
            goal=f"Add a contact named {name} with phone number {phone}{extra}.",
            subgoals=[
                ("contacts open", opened("contacts")),
                ("new contact form open", visited(NEW)),
                ("contact saved", saved),
            ],
            verify=verify,
            plan=plan,
        )

    return Template("contacts.add_email" if with_email else "contacts.add", "contacts", make)


def _edit_field(field_name: str) -> Template:
    def make(device: Device, rng: np.random.Generator) -> Task:
        contact = _existing(device, rng)
        name = contact.name
        value = (
            new_phone(rng)
            if field_name == "phone"
            else f"{name.split()[0].lower()}@work.example.net"
        )
        before = len(_app(device).contacts)

        def done(d: Device) -> bool:
            c = _app(d).find(name)
            if c is None:
                return False
            got = getattr(c, field_name)
            return (
                digits(got) == digits(value) if field_name == "phone" else got.casefold() == value
            )

        def plan(d: Device) -> list[Step]:
            if done(d):
                return []
            return _form_plan(d, edit(name), name, {field_name: value})

        what = "phone number" if field_name == "phone" else "email address"
        return Task(
            goal=f"Change {name}'s {what} to {value}.",
            subgoals=[
                ("contacts open", opened("contacts")),
                (f"{name} open", visited(detail(name))),
                (f"{what} changed", done),
            ],
            verify=lambda d, _: done(d) and len(_app(d).contacts) == before,
            plan=plan,
        )

    return Template(f"contacts.edit_{field_name}", "contacts", make)


def _favorite(device: Device, rng: np.random.Generator) -> Task:
    contact = _existing(device, rng)
    contact.favorite = False
    name = contact.name

    def done(d: Device) -> bool:
        c = _app(d).find(name)
        return c is not None and c.favorite

    return Task(
        goal=f"Mark {name} as a favorite contact.",
        subgoals=[
            ("contacts open", opened("contacts")),
            (f"{name} open", visited(detail(name))),
            ("favorite", done),
        ],
        verify=lambda d, _: done(d),
        plan=lambda d: [] if done(d) else [Step(detail(name), "favorite")],
    )


def _swap_favorites(device: Device, rng: np.random.Generator) -> Task:
    contacts = _app(device).contacts
    first, second = (contacts[int(i)] for i in rng.choice(len(contacts), 2, replace=False))
    first.favorite, second.favorite = True, False
    a, b = first.name, second.name

    def fav(d: Device, name: str) -> bool | None:
        c = _app(d).find(name)
        return None if c is None else c.favorite

    def plan(d: Device) -> list[Step]:
        steps = [Step(detail(a), "favorite")] if fav(d, a) else []
        return steps + ([Step(detail(b), "favorite")] if fav(d, b) is False else [])

    return Task(
        goal=f"Remove {a} from your favorites and add {b} instead.",
        subgoals=[
            (f"{a} not a favorite", lambda d: fav(d, a) is False),
            (f"{b} a favorite", lambda d: fav(d, b) is True),
        ],
        verify=lambda d, _: fav(d, a) is False and fav(d, b) is True,
        plan=plan,
    )


def _delete(device: Device, rng: np.random.Generator) -> Task:
    contact = _existing(device, rng)
    name = contact.name
    others = {c.name for c in _app(device).contacts} - {name}

    def gone(d: Device) -> bool:
        return _app(d).find(name) is None

    def plan(d: Device) -> list[Step]:
        if gone(d):
            return []
        if d.modal is not None and d.modal.kind == "delete_contact" and d.route == detail(name):
            return [Step(detail(name), "confirm")]
        return [Step(detail(name), "delete")]

    return Task(
        goal=f"Delete the contact {name}.",
        subgoals=[
            ("contacts open", opened("contacts")),
            (f"{name} open", visited(detail(name))),
            ("contact deleted", gone),
        ],
        verify=lambda d, _: gone(d) and {c.name for c in _app(d).contacts} == others,
        plan=plan,
    )


def _is_number(answer: str | None) -> bool:
    """Only a phone number counts: "not +1 555 ..." or "+1 555 ... or ..." does not."""
    return bool(re.fullmatch(r"[+\d\s().-]+", normalise_answer(answer) if answer else ""))


def _phone_question(device: Device, rng: np.random.Generator) -> Task:
    contact = _existing(device, rng)
    name, phone = contact.name, contact.phone
    route = detail(name)
    return Task(
        goal=f'What is {name}\'s phone number? Answer with finish("<number>").',
        subgoals=[("contacts open", opened("contacts")), (f"{name} open", visited(route))],
        verify=lambda d, answer: _is_number(answer) and digits(answer or "") == digits(phone),
        plan=lambda d: [] if route in d.visited else [Step(route)],
        answer=phone,
    )


def _count_favorites(device: Device, rng: np.random.Generator) -> Task:
    count = sum(c.favorite for c in _app(device).contacts)
    return Task(
        goal='How many of your contacts are favorites (marked ★)? Answer with finish("<number>").',
        subgoals=[("contacts open", visited(ROOT))],
        verify=lambda d, answer: normalise_answer(answer) == str(count),
        plan=lambda d: [] if ROOT in d.visited else [Step(ROOT)],
        answer=str(count),
    )


TEMPLATES = (
    _add(False),
    _add(True),
    _edit_field("phone"),
    _edit_field("email"),
    Template("contacts.favorite", "contacts", _favorite),
    Template("contacts.swap_favorites", "contacts", _swap_favorites),
    Template("contacts.delete", "contacts", _delete),
    Template("contacts.phone_question", "contacts", _phone_question),
    Template("contacts.count_favorites", "contacts", _count_favorites),
)
