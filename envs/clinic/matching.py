"""Mapping free text to the catalogue: exam names and diagnoses.

Exact lookup in a synonym table first (exam names, ids, synonyms and unique
analyte names; disease names, aliases and accepted broader terms), then fuzzy
matching with RapidFuzz for typos and extra words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from rounds.envs.clinic.knowledge import KnowledgeBase

_FILLER = re.compile(
    r"\b(?:a|an|the|please|order|obtain|perform|get|stat|urgent|some|do|send|request)\b"
)
_NOT_WORD = re.compile(r"[^a-z0-9/ ]+")


def normalise(text: str) -> str:
    """Lower case, ``&`` as ``and``, hyphens and punctuation as spaces, filler words dropped."""
    text = text.lower().replace("&", " and ").replace("-", " ").replace("'s", "s")
    text = _NOT_WORD.sub(" ", text)
    text = _FILLER.sub(" ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class Match:
    """A resolved name: what it matched, and how (``exact`` or the fuzzy score)."""

    ids: tuple[str, ...]
    key: str
    score: float


class NameTable:
    """A synonym table from normalised names to ids, with fuzzy fallback."""

    def __init__(self, cutoff: float) -> None:
        self.cutoff = cutoff
        self.table: dict[str, set[str]] = {}

    def add(self, name: str, target: str, *, only_if_free: bool = False) -> None:
        key = normalise(name)
        if not key:
            return
        if only_if_free and key in self.table and target not in self.table[key]:
            return
        self.table.setdefault(key, set()).add(target)

    def lookup(self, text: str) -> Match | None:
        """The ids ``text`` names, or None; exact matches beat fuzzy ones."""
        key = normalise(text)
        if not key:
            return None
        if key in self.table:
            return Match(tuple(sorted(self.table[key])), key, 100.0)
        best = process.extract(
            key, list(self.table), scorer=fuzz.WRatio, score_cutoff=self.cutoff, limit=5
        )
        if not best:
            return None
        top_score = best[0][1]
        ids = sorted({i for name, score, _ in best if score == top_score for i in self.table[name]})
        return Match(tuple(ids), best[0][0], float(top_score))

    def exact(self, text: str) -> tuple[str, ...] | None:
        key = normalise(text)
        return tuple(sorted(self.table[key])) if key in self.table else None


_SPLIT = re.compile(r"[,;\n+]|\s&\s")


class ExamMatcher:
    """Resolves an exam request (``"CBC"``, ``"full blood count"``, ``"ct abdomen pelvis"``)."""

    def __init__(self, kb: KnowledgeBase, cutoff: float = 88.0) -> None:
        self.kb = kb
        self.names = NameTable(cutoff)
        for exam_id, exam in kb.exams.items():
            self.names.add(exam.name, exam_id)
            self.names.add(exam_id.replace("_", " "), exam_id)
            for synonym in exam.synonyms:
                self.names.add(synonym, exam_id)
        # Analyte names ("lipase", "hemoglobin") name their exam when no exam claims them.
        counts: dict[str, set[str]] = {}
        for exam_id, exam in kb.exams.items():
            for feature in exam.features.values():
                counts.setdefault(normalise(feature.name), set()).add(exam_id)
        for name, owners in counts.items():
            if len(owners) == 1:
                self.names.add(name, next(iter(owners)), only_if_free=True)

    def resolve(self, text: str) -> tuple[str | None, list[str]]:
        """The first exam ``text`` names, and every distinct exam it names (to spot several)."""
        whole = self.names.exact(text)
        if whole is not None and len(whole) == 1:
            return whole[0], list(whole)
        parts: list[str] = []
        for part in (p for p in _SPLIT.split(text) if p.strip()):
            # "CBC and BMP" names two exams; "CT abdomen and pelvis" names one.
            halves = [h for h in re.split(r"\band\b", part) if h.strip()]
            exact = [self.names.exact(h) for h in halves]
            if (
                len(halves) > 1
                and self.names.exact(part) is None
                and all(e and len(e) == 1 for e in exact)
            ):
                parts += halves
            else:
                parts.append(part)
        found: list[str] = []
        for part in parts:
            match = self.names.lookup(part)
            if match is not None and len(match.ids) == 1 and match.ids[0] not in found:
                found.append(match.ids[0])
        return (found[0] if found else None), found


class DiagnosisMatcher:
    """Decides whether a stated diagnosis names a case's diagnosis."""

    def __init__(self, kb: KnowledgeBase, cutoff: float = 90.0) -> None:
        self.kb = kb
        self.names = NameTable(cutoff)
        for disease in kb.diseases:
            self.names.add(disease.name, disease.id)
            for alias in disease.aliases:
                self.names.add(alias, disease.id)
        for term, ids in kb.broader_terms.items():
            for disease_id in ids:
                self.names.add(term, disease_id)

    def resolve(self, text: str) -> tuple[str, ...]:
        """The knowledge-base diagnoses ``text`` names (several for a broader term); () if none."""
        match = self.names.lookup(text)
        return match.ids if match is not None else ()

    def same(self, stated: str, truth: str, truth_aliases: Iterable[str] = ()) -> bool:
        """Whether ``stated`` names the diagnosis ``truth`` (a name, alias or disease id).

        Both resolve through the table; a stated text that names several diseases
        only counts when it is an accepted broader term of the truth. For a truth
        outside the knowledge base, the stated text must fuzzily match its name or
        an alias.
        """
        truth_ids = set(self.resolve(truth))
        if truth in self.kb.disease_index:
            truth_ids = {truth}
        stated_ids = set(self.resolve(stated))
        if truth_ids and stated_ids:
            if len(stated_ids) > 1 and normalise(stated) not in {
                normalise(t) for t in self.kb.broader_terms
            }:
                return False  # a hedge between several diagnoses
            return bool(truth_ids & stated_ids)
        candidates = [truth, *truth_aliases]
        key = normalise(stated)
        return any(
            fuzz.token_set_ratio(key, normalise(c)) >= self.names.cutoff
            for c in candidates
            if normalise(c)
        )
