"""Exam names: what an order names, matched strictly so it never gets another test's result.

An order is resolved to a catalogue item (or a case record's exam) only when it
names it with confidence: its canonical form (lower case, hospital abbreviations
spelled out: ``W/O`` -> without, ``U.S.`` -> ultrasound, ``ABD`` -> abdomen, ``LAT``
-> lateral) equals a name, a synonym or a unique analyte name of the item, or
differs from one by typing errors only (the same words, each misspelt at most
slightly; words of three letters or fewer, such as the ``I`` of troponin I or
``CT``, must match exactly). Anything else is not available: "troponin I" never
gets troponin T's result, "CT chest" never a CT pulmonary angiogram's, "urine
sodium" never the chemistry panel's sodium. Hospital-style (MIMIC) order names
such as ``CHEST (PA AND LAT)`` and ``CT HEAD W/O CONTRAST`` are catalogue
synonyms, so they resolve exactly.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from rapidfuzz import fuzz, process

from rounds.envs.clinic.knowledge import KnowledgeBase

#: Phrases rewritten before tokenising (hospital order abbreviations).
_PHRASES = (
    (re.compile(r"\bw\s*&\s*w\s*/?\s*o\b"), " with and without "),
    (re.compile(r"\bw\s*/\s*o\b"), " without "),
    (re.compile(r"\bw\s*/\s*(?=\w)"), " with "),
    (re.compile(r"\bu\.\s*s\.?"), " ultrasound "),
    (re.compile(r"&"), " and "),
    (re.compile(r"'s\b"), "s"),
)
_NOT_WORD = re.compile(r"[^a-z0-9]+")
#: Single words spelled out or unified.
_WORDS = {
    "abd": "abdomen",
    "abdominal": "abdomen",
    "us": "ultrasound",
    "usg": "ultrasound",
    "sonography": "ultrasound",
    "lat": "lateral",
    "ext": "extremity",
    "extremities": "extremity",
    "xr": "x ray",
    "xray": "x ray",
    "radiograph": "x ray",
    "cxr": "chest x ray",
    "haemoglobin": "hemoglobin",
    "haematocrit": "hematocrit",
    "oesophago": "esophago",
    "unilat": "unilateral",
    "bilat": "bilateral",
    "w": "with",
    "wo": "without",
    "non": "non",
    "noncontrast": "non contrast",
    "contrasted": "contrast",
}
#: Words that add nothing to what is ordered.
_FILLER = frozenset(
    [
        "a",
        "an",
        "the",
        "please",
        "order",
        "obtain",
        "perform",
        "get",
        "stat",
        "urgent",
        "some",
        "do",
        "send",
        "request",
        "check",
        "routine",
        "portable",
        "single",
        "organ",
        "exam",
        "study",
        "scan",
        "test",
        "level",
        "levels",
    ]
)
#: Words that distinguish tests and therefore may not be fuzzily matched or dropped.
_SHORT = 3


def canonical(text: str) -> str:
    """The canonical form of an exam name (see the module docstring)."""
    text = text.lower()
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    words: list[str] = []
    for word in _NOT_WORD.sub(" ", text).split():
        words += _WORDS.get(word, word).split()
    return " ".join(w for w in words if w not in _FILLER)


def _same_words(query: str, candidate: str) -> bool:
    """The same words in the same order, long ones at most slightly misspelt, short ones exact."""
    a, b = query.split(), candidate.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        if len(x) <= _SHORT or len(y) <= _SHORT or x.isdigit() or y.isdigit():
            return False
        if fuzz.ratio(x, y) < 80:
            return False
    return True


class ExamNameTable:
    """Names to ids, matched exactly after canonicalisation or with typing errors only."""

    def __init__(self) -> None:
        self.table: dict[str, set[str]] = {}

    def add(self, name: str, target: str, *, only_if_free: bool = False) -> None:
        key = canonical(name)
        if not key:
            return
        if only_if_free and key in self.table and target not in self.table[key]:
            return
        self.table.setdefault(key, set()).add(target)

    def exact(self, text: str) -> tuple[str, ...] | None:
        key = canonical(text)
        return tuple(sorted(self.table[key])) if key in self.table else None

    def lookup(self, text: str) -> tuple[str, ...] | None:
        """The ids ``text`` names with confidence, or None."""
        key = canonical(text)
        if not key:
            return None
        if key in self.table:
            return tuple(sorted(self.table[key]))
        candidates = process.extract(key, list(self.table), scorer=fuzz.ratio, limit=5)
        close = [name for name, score, _ in candidates if score >= 85 and _same_words(key, name)]
        ids = {i for name in close for i in self.table[name]}
        return tuple(sorted(ids)) if len(ids) == 1 else None


_SPLIT = re.compile(r"[,;\n+]|\s&\s")


class ExamMatcher:
    """Resolves an order (``"CBC"``, ``"full blood count"``, ``"CHEST (PA AND LAT)"``) to catalogue exams."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.names = ExamNameTable()
        for exam_id, exam in kb.exams.items():
            self.names.add(exam.name, exam_id)
            self.names.add(exam_id.replace("_", " "), exam_id)
            for synonym in exam.synonyms:
                self.names.add(synonym, exam_id)
        # Analyte names ("lipase", "anion gap") name their exam when no other exam reports them.
        owners: dict[str, set[str]] = {}
        for exam_id in kb.exams:
            for key in kb.exam_display[exam_id]:
                if key.split(".", 1)[0] == exam_id:  # reported by the exam itself, not included
                    owners.setdefault(canonical(kb.features[key].name), set()).add(exam_id)
        for name, exams in owners.items():
            if len(exams) == 1:
                self.names.add(name, next(iter(exams)), only_if_free=True)

    def resolve(self, text: str) -> tuple[str | None, list[str]]:
        """The first exam ``text`` names, and every distinct exam it names (to spot several)."""
        whole = self.names.exact(text)
        if whole is not None and len(whole) == 1:
            return whole[0], list(whole)
        found: list[str] = []
        for part in self._parts(text):
            ids = self.names.lookup(part)
            if ids is not None and len(ids) == 1 and ids[0] not in found:
                found.append(ids[0])
        return (found[0] if found else None), found

    def _parts(self, text: str) -> Iterable[str]:
        """``"CBC and BMP"`` names two exams; ``"CT abdomen and pelvis"`` names one."""
        for part in (p for p in _SPLIT.split(text) if p.strip()):
            halves = [h for h in re.split(r"\band\b", part) if h.strip()]
            exact = [self.names.exact(h) for h in halves]
            if (
                len(halves) > 1
                and self.names.exact(part) is None
                and all(e and len(e) == 1 for e in exact)
            ):
                yield from halves
            else:
                yield part


@functools.cache
def shared_exam_matcher(kb: KnowledgeBase) -> ExamMatcher:
    """One :class:`ExamMatcher` per catalogue, shared by every env of the process (building
    one canonicalises every exam name and synonym: about 4 ms; it is read-only after)."""
    return ExamMatcher(kb)
