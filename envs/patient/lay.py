"""Plain words for the clinic's facts: the patient's phrasing and the doctor's synonyms.

``lay.yaml`` (beside this module) holds, per knowledge-base key, the phrase a
patient with low health literacy uses and the words a doctor may ask with. The
knowledge base stays the one source of medical facts; this file only words them.
:func:`first_person` turns a case file's third-person fact ("The patient reports
dyspnea") into what a patient would say ("I have dyspnea").
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from rounds.envs.clinic.knowledge import CategoricalFeature, NumericFeature, load_knowledge
from rounds.envs.patient.retrieval import tokenize
from rounds.storage import read_yaml

LAY_FILE = Path(__file__).with_name("lay.yaml")


@dataclass(frozen=True)
class LayEntry:
    """One key's plain phrase and question synonyms."""

    lay: str
    terms: tuple[str, ...] = ()


@dataclass
class LayTable:
    """Plain phrases and synonyms by knowledge-base key (``symptoms.fever``, ``cbc.wbc``, ...)."""

    entries: dict[str, LayEntry] = field(default_factory=dict)
    _phrases: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key, entry in self.entries.items():
            for phrase in (entry.lay, *entry.terms):
                words = tuple(tokenize(phrase))
                if words:
                    self._phrases.append((words, key))

    def get(self, key: str) -> LayEntry | None:
        return self.entries.get(key)

    def keys_in(self, text: str) -> list[str]:
        """The keys whose plain phrase or synonym occurs (as whole stemmed words) in ``text``."""
        tokens = tokenize(text)
        joined = f" {' '.join(tokens)} "
        found: list[str] = []
        for words, key in self._phrases:
            if key not in found and f" {' '.join(words)} " in joined:
                found.append(key)
        return found

    def expansion(self, text: str, *, min_words: int = 1) -> list[str]:
        """Synonyms of every key ``text`` mentions (how a file's fact gains question words)."""
        terms: list[str] = []
        for key in self.keys_in(text):
            entry = self.entries[key]
            terms += [entry.lay, *entry.terms]
        return [t for t in terms if len(t.split()) >= min_words]


@functools.cache
def load_lay_table(path: Path = LAY_FILE) -> LayTable:
    """``lay.yaml`` joined with the knowledge base's own names (cached per process).

    Every exam feature also answers to its exam's name and synonyms ("CBC", "full blood
    count" for the white cell count), and a feature ``lay.yaml`` does not word keeps its
    catalogue name, so questions in the clinic's vocabulary find the facts too.
    """
    doc = read_yaml(path)
    entries: dict[str, LayEntry] = {}
    for group in ("symptoms", "history", "vitals", "exams"):
        for name, item in (doc.get(group) or {}).items():
            key = name if group == "exams" else f"{group}.{name}"
            entries[key] = LayEntry(str(item["lay"]), tuple(str(t) for t in item.get("terms", [])))
    kb = load_knowledge()
    for exam_id, exam in kb.exams.items():
        for feature_id, feature in exam.features.items():
            if not isinstance(feature, NumericFeature | CategoricalFeature):
                continue  # findings are clinicians' sentences, not something a patient is told
            key = f"{exam_id}.{feature_id}"
            known = entries.get(key)
            names = (feature.name, exam.name, *exam.synonyms)
            if known is None:
                entries[key] = LayEntry(feature.name.lower(), names)
            else:
                extra = tuple(n for n in names if n not in known.terms)
                entries[key] = LayEntry(known.lay, (*known.terms, *extra))
    return LayTable(entries)


# ------------------------------------------------------------------ first person

_SUBJECT = re.compile(r"^(?:the patient|this patient|the woman|the man|he|she)\b", re.IGNORECASE)
_DEMOGRAPHIC = re.compile(
    r"^an?\s+(?P<age>\d+)[- ](?:year|yr)s?[- ]old\s+(?P<who>[\w\s-]*?)\s+(?:presents|comes|is brought|is admitted|presented)"
    r"(?:\s+to\s+[\w\s-]+?)?\s+(?:with|because of|for)\s+(?P<rest>.*)$",
    re.IGNORECASE,
)
_VERBS = [
    (r"\breports\b", "have"),
    (r"\bcomplains of\b", "have"),
    (r"\bdescribes\b", "have"),
    (r"\bdenies\b", "don't have"),
    (r"\bhas had\b", "have had"),
    (r"\bhas\b", "have"),
    (r"\bis\b", "am"),
    (r"\bwas\b", "was"),
    (r"\bdoes not\b", "don't"),
    (r"\bdoesn't\b", "don't"),
    (r"\bsmokes\b", "smoke"),
    (r"\bdrinks\b", "drink"),
    (r"\btakes\b", "take"),
    (r"\buses\b", "use"),
    (r"\bworks\b", "work"),
    (r"\blives\b", "live"),
    (r"\bnotes\b", "noticed"),
]
_PRONOUNS = [
    (r"\b(?:his|her|the patient's)\b", "my"),
    (r"\b(?:him|herself|himself)\b", "me"),
]
_MEASUREMENT = re.compile(r"\d")


def first_person(fact: str) -> str:
    """A third-person fact as the patient would say it (a measured value: as the doctor told it)."""
    text = " ".join(fact.split()).rstrip(".")
    if not text:
        return "I'm not sure."
    demographic = _DEMOGRAPHIC.match(text)
    if demographic is not None:
        return f"I'm {demographic['age']}, and I came in with {demographic['rest']}."
    if _SUBJECT.match(text):
        text = _SUBJECT.sub("I", text, count=1)
        for pattern, replacement in _VERBS:
            text = re.sub(pattern, replacement, text, count=1)
        for pattern, replacement in _PRONOUNS:
            text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
        return text[0].upper() + text[1:] + "."
    if _MEASUREMENT.search(text):
        return f"The doctor told me: {text[0].lower() + text[1:]}."
    for pattern, replacement in _PRONOUNS:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    return f"{text[0].upper() + text[1:]}."
