"""The six built-in apps and their task templates."""

from __future__ import annotations

import numpy as np

from rounds.envs.gui.apps import calendar, contacts, files, mail, settings, shop
from rounds.envs.gui.apps.people import draw_people
from rounds.envs.gui.device import App, Device
from rounds.envs.gui.tasks import Template

#: Every task template, by name, in a fixed order.
TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        *settings.TEMPLATES,
        *contacts.TEMPLATES,
        *calendar.TEMPLATES,
        *shop.TEMPLATES,
        *mail.TEMPLATES,
        *files.TEMPLATES,
    )
}
APP_NAMES = ("settings", "contacts", "calendar", "shop", "mail", "files")


def generate_device(rng: np.random.Generator) -> Device:
    """A phone with all six apps, their data drawn from ``rng`` (people shared by contacts and mail)."""
    people = draw_people(rng, int(rng.integers(10, 16)))
    apps: dict[str, App] = {
        "settings": settings.SettingsApp.generate(rng),
        "contacts": contacts.ContactsApp.generate(people, rng),
        "calendar": calendar.CalendarApp.generate(rng),
        "shop": shop.ShopApp.generate(rng),
        "mail": mail.MailApp.generate(people, rng),
        "files": files.FilesApp.generate(rng),
    }
    return Device(apps)
