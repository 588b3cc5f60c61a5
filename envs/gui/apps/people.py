"""The people of a generated phone: contacts, email correspondents and event guests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIRST_NAMES = (
    "Ana",
    "Ben",
    "Chloe",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
    "Zoe",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
)
LAST_NAMES = (
    "Lima",
    "Berg",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Patel",
    "Rossi",
    "Silva",
    "Tanaka",
    "Novak",
)


@dataclass
class Person:
    name: str
    phone: str
    email: str


def draw_people(rng: np.random.Generator, count: int) -> list[Person]:
    """``count`` people with distinct first names, phone numbers and addresses."""
    firsts = rng.choice(len(FIRST_NAMES), size=count, replace=False)
    people = []
    for index in firsts:
        first = FIRST_NAMES[int(index)]
        last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
        phone = f"+1 555 {int(rng.integers(100, 1000))} {int(rng.integers(1000, 10000))}"
        email = f"{first.lower()}.{last.lower()}@example.com"
        people.append(Person(f"{first} {last}", phone, email))
    return sorted(people, key=lambda p: p.name)


def new_phone(rng: np.random.Generator) -> str:
    return f"+1 555 {int(rng.integers(100, 1000))} {int(rng.integers(1000, 10000))}"
