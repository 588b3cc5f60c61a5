"""The strict diagnosis examiner: whether a stated diagnosis commits to the case's.

(Exam names are matched in :mod:`.exam_names`; :func:`normalise` is the plain text
key both the env and the patient simulator use for answer-level statistics.)

Diagnoses (:class:`DiagnosisMatcher`) are judged strictly, because an RL agent
learns every loophole of its verifier. The rules, in the order they apply:

1. **Verbatim.** The truth's own text given back (after normalisation) is correct,
   so a DiagBench record's ``final_diagnosis`` always scores against itself.
2. **One committed diagnosis.** Only the head of the answer counts: the words
   of its first sentence (or line) before a connector that introduces a cause or
   complication (``due to``, ``precipitated by``, ``with``, ``secondary to``...),
   so "DKA precipitated by pneumonia" is DKA, and "Acute appendicitis. Differential:
   ovarian torsion." is appendicitis. A head that names several diagnoses (a differential or a
   shotgun list), hedges (``possible``, ``rule out``, ``?``, ``or``, ``vs``) or
   only negates (``no``, ``not``, ``unlikely``, ``ruled out``, ``excluded``)
   commits to nothing and scores 0; :meth:`DiagnosisMatcher.commitment` says why.
   A negated diagnosis beside a committed one is fine ("pneumonia; PE ruled out"),
   and one in brackets restates the one before it ("pyelonephritis (complicated
   UTI)"). ``likely``, ``probable``, ``presumed`` and ``suspected`` are a commitment.
3. **Whole catalogue phrases.** A diagnosis is recognised only as a whole name,
   alias or broader term of the catalogue, word for word (longest first), never
   as a short key inside a longer word (``PE`` is not in "pericarditis",
   "pneumonia" is not "pneumoniae"). Typos are forgiven word by word: an unknown
   word of at least 6 letters becomes the one catalogue word within one edit
   (optimal string alignment). There is no fuzzy match of whole answers.
4. **Qualifiers that change the disease.** Words of the head outside the
   recognised phrase are qualifiers. In each group of :data:`QUALIFIER_GROUPS`
   (viral/bacterial/alcoholic..., acute/chronic, upper/lower, stable/unstable,
   urgency/emergency, prerenal/postrenal, type 1/type 2...) a disease allows the
   values its own names use; another value of that group is a different disease
   ("viral meningitis" is not bacterial meningitis). ``non-`` and ``pseudo-``
   words (:data:`NEGATING_PREFIXES`) change any disease whose names lack them.
   Other words (anatomy, organism, severity: "inferior STEMI") are detail, and so
   is ``upper``/``lower`` before a body part (:data:`ANATOMY_NOUNS`).
5. **Broader terms** (the catalogue's top-level ``broader_terms``, e.g. "ACS" for
   STEMI) do not score by default, as the LLM judge's prompt says;
   ``accept_broader=True`` accepts them.

Everything is read from the catalogue (names, aliases, ``broader_terms``), so a
new disease needs no code: its names give its phrases and its allowed qualifiers
(a name "Acute viral hepatitis" makes "alcoholic hepatitis" a different disease).
A truth outside the catalogue (a DiagBench text) is compared by its head: the
answer's head must contain the truth's head word for word with at most
:data:`MAX_DETAIL_WORDS` words of detail and no conflicting qualifier, or hold the
truth's main word with the rest of the truth as its cause ("liver abscess due to
Klebsiella" for "Klebsiella liver abscess").
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import OSA

from rounds.envs.clinic.knowledge import KnowledgeBase

_FILLER = re.compile(
    r"\b(?:a|an|the|please|order|obtain|perform|get|stat|urgent|some|do|send|request)\b"
)
_NOT_WORD = re.compile(r"[^a-z0-9/ ]+")


def normalise(text: str) -> str:
    """Lower case, ``&`` as ``and``, hyphens and punctuation as spaces, filler words dropped
    (an answer's key for answer-level statistics)."""
    text = text.lower().replace("&", " and ").replace("-", " ").replace("'s", "s")
    text = _NOT_WORD.sub(" ", text)
    text = _FILLER.sub(" ", text)
    return " ".join(text.split())


# ------------------------------------------------------------------ diagnoses

#: Groups of qualifiers; within a group, values name different diseases.
QUALIFIER_GROUPS: Mapping[str, tuple[str, ...]] = {
    "cause": (
        "viral",
        "bacterial",
        "fungal",
        "parasitic",
        "tuberculous",
        "aseptic",
        "alcoholic",
        "autoimmune",
        "drug induced",
        "toxic",
        "idiopathic",
        "infectious",
    ),
    "course": ("acute", "chronic", "subacute"),
    "level": ("upper", "lower"),
    "stability": ("stable", "unstable"),
    "urgency": ("urgency", "emergency"),
    "kidney": ("prerenal", "postrenal", "intrinsic", "intrarenal"),
    "vascular": ("ischemic", "hemorrhagic"),
    "complication": ("complicated", "uncomplicated"),
    "rupture": ("ruptured", "unruptured"),
    "type": ("type 1", "type 2", "type i", "type ii"),
    "acquisition": (
        "community acquired",
        "hospital acquired",
        "nosocomial",
        "healthcare associated",
        "ventilator associated",
        "aspiration",
    ),
}
#: A name that allows ``infectious`` allows every infectious cause.
_INFECTIOUS = frozenset({"viral", "bacterial", "fungal", "parasitic", "tuberculous"})
#: Words with these prefixes make a different condition ("non-epileptic seizure",
#: "pseudo-gout") unless the disease's own names use them.
NEGATING_PREFIXES = ("non", "pseudo")

#: Connectors after which an answer names a cause or complication, not its diagnosis.
CONNECTORS = (
    "due to",
    "secondary to",
    "caused by",
    "precipitated by",
    "complicated by",
    "triggered by",
    "induced by",
    "because of",
    "associated with",
    "in the setting of",
    "in setting of",
    "leading to",
    "resulting in",
    "causing",
    "with",
    "without",
    "from",
    "after",
    "following",
    "in",
)
#: Cues before a diagnosis (in its clause) that negate it.
NEGATIONS_BEFORE = (
    "no",
    "not",
    "unlikely",
    "less likely",
    "without",
    "denies",
    "negative for",
    "no evidence of",
    "no signs of",
    "free of",
    "absence of",
    "excluded",
    "exclude",
)
#: Cues after a diagnosis (in its clause) that negate it.
NEGATIONS_AFTER = (
    "ruled out",
    "excluded",
    "unlikely",
    "not likely",
    "less likely",
    "absent",
    "negative",
    "not present",
    "not confirmed",
    "not supported",
)
#: Cues that leave the answer uncommitted (a hedge or a differential).
HEDGES = (
    "possible",
    "possibly",
    "maybe",
    "perhaps",
    "might be",
    "could be",
    "cannot exclude",
    "can not exclude",
    "cannot rule out",
    "can not rule out",
    "rule out",
    "questionable",
    "query",
    "consider",
    "differential",
    "ddx",
    "doubtful",
    "either",
    "or",
    "vs",
    "versus",
    "?",
)
#: Lead-ins removed from the start of an answer ("consistent with" is not a connector there).
_LEAD_IN = re.compile(
    r"^(?:(?:the|my|our)\s+)?(?:(?:final|working|most\s+likely|primary|principal)\s+)?"
    r"(?:diagnosis|dx|impression|answer|assessment)\s*(?:is|of|:)?\s+"
    r"|^(?:(?:this\s+is|findings\s+are|presentation\s+is|it\s+is)\s+)?(?:most\s+)?"
    r"(?:consistent|compatible)\s+with\s+"
    r"|^(?:(?:a|the)\s+)?(?:patient|pt)\s+(?:has|with|presenting\s+with|is\s+suffering\s+from)\s+"
    r"|^(?:suggestive\s+of|diagnosed\s+with|case\s+of|a\s+case\s+of)\s+"
)
#: Prefixes written apart or hyphenated that join the next word ("pre-renal" = "prerenal").
_JOINED_PREFIXES = ("pre", "post", "pseudo", "hyper", "hypo", "intra", "sub", "peri", "para")
#: British spellings and other variants, folded on both sides of a comparison.
_SPELLINGS = (
    (re.compile(r"(?<=[a-z])ae(?=[a-z])"), "e"),
    (re.compile(r"(?<=[a-z])oe(?=[a-z])"), "e"),
    (re.compile(r"\bst[\s-]+segment\b"), "st"),
)
#: Nouns after which ``upper``/``lower``... name a body part, not a kind of disease
#: ("right upper lobe pneumonia", "lower limb cellulitis").
ANATOMY_NOUNS = frozenset(
    {"lobe", "lobes", "extremity", "extremities", "limb", "limbs", "quadrant", "leg", "legs"}
    | {"arm", "arms", "pole", "zone", "lid", "lip", "back", "abdomen", "chest", "eyelid"}
)
_SEPARATORS = frozenset({",", ";", "(", ")", "/", "and", "but", ":", "|"})
_TOKEN = re.compile(r"[a-z0-9]+|[,;()/?:|]")
#: The end of the answer's first sentence (a full stop before a capital, or a line break;
#: not "E. coli"): the first sentence is the diagnosis, what follows is commentary.
_SENTENCE_END = re.compile(r"(?<=[A-Za-z0-9)\]]{2})\.\s+(?=[A-Z])|\s*\n\s*")
_END_OF_HEAD = "|"
_FILLER_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "likely",
        "probable",
        "presumed",
        "suspected",
        "most",
        "is",
        "probably",
    }
)
#: Words of detail an answer may add to a truth outside the catalogue (more is a list).
MAX_DETAIL_WORDS = 4
_MAX_TYPO_DISTANCE = 1
_MIN_TYPO_LENGTH = 6


def _fold(text: str) -> str:
    text = text.lower().replace("&", " and ").replace("'s", "s").replace("r/o", " rule out ")
    for pattern, replacement in _SPELLINGS:
        text = pattern.sub(replacement, text)
    return text


def diagnosis_tokens(text: str) -> list[str]:
    """The words and separators of a diagnosis text, folded (case, spelling, prefixes)."""
    text = _fold(_SENTENCE_END.sub(f" {_END_OF_HEAD} ", text.strip()))
    text = _LEAD_IN.sub("", " ".join(text.replace("-", " ").split()))
    raw = _TOKEN.findall(text)
    tokens: list[str] = []
    for token in raw:
        if tokens and tokens[-1] in _JOINED_PREFIXES and token.isalpha():
            tokens[-1] += token
        else:
            tokens.append(token)
    return tokens


def _phrase(text: str) -> str:
    return " ".join(t for t in diagnosis_tokens(text) if t.isalnum())


def _find(
    tokens: list[str], phrase: tuple[str, ...], start: int = 0, end: int | None = None
) -> int:
    end = len(tokens) if end is None else end
    for i in range(start, end - len(phrase) + 1):
        if tuple(tokens[i : i + len(phrase)]) == phrase:
            return i
    return -1


@dataclass(frozen=True)
class Mention:
    """A catalogue phrase found in an answer: its token span and the diseases it names."""

    start: int
    end: int
    phrase: str
    ids: frozenset[str]
    broader: bool


@dataclass(frozen=True)
class Reading:
    """What an answer commits to: its head's diagnoses, and why it may commit to none."""

    tokens: tuple[str, ...]
    head_end: int
    committed: tuple[Mention, ...]
    negated: tuple[Mention, ...]
    hedged: bool
    extras: tuple[str, ...]
    """Head words outside the committed phrase and the cues: the qualifiers."""

    @property
    def head(self) -> tuple[str, ...]:
        return tuple(t for t in self.tokens[: self.head_end] if t not in _SEPARATORS)

    @property
    def concepts(self) -> list[frozenset[str]]:
        return list(dict.fromkeys(m.ids for m in self.committed))


class DiagnosisMatcher:
    """The strict examiner: whether a stated diagnosis commits to a case's diagnosis.

    Args:
        kb: the catalogue whose names, aliases and broader terms are the phrases.
        accept_broader: accept a broader term of the truth ("ACS" for STEMI).
    """

    def __init__(self, kb: KnowledgeBase, *, accept_broader: bool = False) -> None:
        self.kb = kb
        self.accept_broader = accept_broader
        self.phrases: dict[str, set[str]] = {}
        self.broader: dict[str, set[str]] = {}
        self.allowed: dict[str, dict[str, set[str]]] = {}
        self.own_words: dict[str, set[str]] = {}
        for disease in kb.diseases:
            names = [disease.name, *disease.aliases]
            for name in names:
                key = _phrase(name)
                if key:
                    self.phrases.setdefault(key, set()).add(disease.id)
            words = [diagnosis_tokens(name) for name in names]
            self.allowed[disease.id] = self._qualifiers(words)
            self.own_words[disease.id] = {w for ws in words for w in ws}
        for term, ids in kb.broader_terms.items():
            key = _phrase(term)
            if key and key not in self.phrases:
                self.broader.setdefault(key, set()).update(ids)
        self.max_phrase = max(len(k.split()) for k in [*self.phrases, *self.broader])
        self.vocabulary = sorted(
            {w for key in [*self.phrases, *self.broader] for w in key.split()}
            | {w for values in QUALIFIER_GROUPS.values() for v in values for w in v.split()}
        )
        self._known = frozenset(self.vocabulary)
        self._corrections: dict[str, str] = {}

    @staticmethod
    def _qualifiers(names: Iterable[list[str]]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for tokens in names:
            for group, values in QUALIFIER_GROUPS.items():
                for value in values:
                    words = tuple(value.split())
                    at = _find(tokens, words)
                    while at >= 0:
                        after = at + len(words)
                        if after >= len(tokens) or tokens[after] not in ANATOMY_NOUNS:
                            found.setdefault(group, set()).add(value)
                            break
                        at = _find(tokens, words, at + 1)
        return found

    # -------------------------------------------------------------- reading

    def _correct(self, token: str) -> str:
        # One matcher serves every env of a process (threads too): read into a local, so a
        # clear by another thread between the check and the read cannot lose the entry.
        corrected = self._corrections.get(token)
        if corrected is None:
            if len(self._corrections) > 100_000:  # hostile text: keep the cache bounded
                self._corrections.clear()
            corrected = self._corrections[token] = self._closest(token)
        return corrected

    def _closest(self, token: str) -> str:
        if token in self._known or len(token) < _MIN_TYPO_LENGTH or not token.isalpha():
            return token
        close = process.extract(
            token, self.vocabulary, scorer=OSA.distance, score_cutoff=_MAX_TYPO_DISTANCE, limit=2
        )
        # one candidate only, and not a longer word built on it ("pneumoniae" is an organism)
        if len(close) == 1 and not token.startswith(close[0][0]):
            return close[0][0]
        return token

    def _mentions(self, tokens: list[str]) -> list[Mention]:
        found: list[Mention] = []
        i = 0
        while i < len(tokens):
            for length in range(min(self.max_phrase, len(tokens) - i), 0, -1):
                key = " ".join(tokens[i : i + length])
                if key in self.phrases or key in self.broader:
                    specific = key in self.phrases
                    ids = self.phrases[key] if specific else self.broader[key]
                    found.append(Mention(i, i + length, key, frozenset(ids), not specific))
                    i += length
                    break
            else:
                i += 1
        return found

    @staticmethod
    def _cue_hits(
        tokens: list[str], phrases: Iterable[str], inside: set[int], end: int
    ) -> list[tuple[int, int]]:
        """Where each cue phrase occurs before ``end``, outside diagnosis phrases: (start, length)."""
        found: list[tuple[int, int]] = []
        for cue in phrases:
            words = tuple(cue.split())
            first = words[0]
            for at in range(end - len(words) + 1):
                if (
                    tokens[at] == first
                    and tuple(tokens[at : at + len(words)]) == words
                    and not inside.intersection(range(at, at + len(words)))
                ):
                    found.append((at, len(words)))
        return found

    @staticmethod
    def _head_end(tokens: list[str], inside: set[int]) -> int:
        """Where the head ends: the first connector after the first word, outside phrases."""
        connectors = [tuple(c.split()) for c in CONNECTORS]
        for j in range(1, len(tokens)):
            if tokens[j] == _END_OF_HEAD:
                return j
            if j in inside:
                continue
            for phrase in connectors:
                if tuple(tokens[j : j + len(phrase)]) == phrase:
                    return j
        return len(tokens)

    def read(self, text: str) -> Reading:
        """How the answer ``text`` reads: the diagnoses its head commits to, negations, hedges."""
        tokens = [self._correct(t) for t in diagnosis_tokens(text)]
        # "non-STEMI", "N-STEMI": a negating word joined to an abbreviation that exists with it
        joined: list[str] = []
        for token in tokens:
            if joined and joined[-1] in ("non", "n") and ("n" + token) in self._known:
                joined[-1] = "n" + token
            else:
                joined.append(token)
        tokens = joined
        mentions = self._mentions(tokens)
        inside = {i for m in mentions for i in range(m.start, m.end)}
        head_end = self._head_end(tokens, inside)
        head = [m for m in mentions if m.end <= head_end]
        hits = {
            kind: self._cue_hits(tokens, phrases, inside, head_end)
            for kind, phrases in (
                ("hedge", HEDGES),
                ("before", NEGATIONS_BEFORE),
                ("after", NEGATIONS_AFTER),
            )
        }
        breaks = [i for i, t in enumerate(tokens[:head_end]) if t in _SEPARATORS]
        cues: set[int] = set()

        def cue_in(kind: str, start: int, end: int) -> bool:
            found = [(at, n) for at, n in hits[kind] if start <= at and at + n <= end]
            for at, n in found:
                cues.update(range(at, at + n))
            return bool(found)

        negated: list[Mention] = []
        kept: list[Mention] = []
        depth = 0
        in_brackets: set[int] = set()
        for i, token in enumerate(tokens[:head_end]):
            depth = depth + 1 if token == "(" else max(depth - 1, 0) if token == ")" else depth
            if depth and token != "(":
                in_brackets.add(i)
        for mention in head:
            # the mention's clause: between the separators around it
            before = bisect.bisect_left(breaks, mention.start)
            left = breaks[before - 1] + 1 if before > 0 else 0
            after = bisect.bisect_left(breaks, mention.end)
            right = breaks[after] if after < len(breaks) else head_end
            if cue_in("hedge", left, right):
                kept.append(mention)
            elif cue_in("before", left, mention.start) or cue_in("after", mention.end, right):
                negated.append(mention)
            else:
                kept.append(mention)
        hedged = cue_in("hedge", 0, head_end)
        # A diagnosis in brackets restates or details the one before it ("pyelonephritis
        # (complicated UTI)"); it counts only when the answer has none outside brackets.
        outside = [m for m in kept if m.start not in in_brackets]
        if outside:
            kept = outside
        specific = [m for m in kept if not m.broader]
        committed = tuple(
            m for m in kept if not (m.broader and any(s.ids <= m.ids for s in specific))
        )
        covered = {i for m in committed for i in range(m.start, m.end)}
        covered |= {i for m in negated for i in range(m.start, m.end)} | cues
        extras = tuple(
            t
            for i, t in enumerate(tokens[:head_end])
            if i not in covered and t not in _SEPARATORS and t not in _FILLER_WORDS
        )
        return Reading(tuple(tokens), head_end, committed, tuple(negated), hedged, extras)

    def commitment(self, text: str) -> str | None:
        """Why the answer commits to no single diagnosis (shown to the agent), or None."""
        reading = self.read(text)
        concepts = reading.concepts
        if len(concepts) > 1:
            return (
                f"The answer names {len(concepts)} different diagnoses; only one committed "
                "diagnosis can score, so it scores 0."
            )
        if reading.hedged:
            return "The answer is hedged (possible, rule out, or...), not committed; it scores 0."
        if not concepts and reading.negated:
            return "The answer only rules diagnoses out; it names no diagnosis, so it scores 0."
        return None

    def resolve(self, text: str) -> tuple[str, ...]:
        """The catalogue diagnoses ``text`` commits to (several for a broader term); () if none."""
        reading = self.read(text)
        concepts = reading.concepts
        if reading.hedged or len(concepts) != 1:
            return ()
        return tuple(sorted(concepts[0]))

    # -------------------------------------------------------------- judging

    def _conflict(
        self, extras: Iterable[str], allowed: Mapping[str, set[str]], own: set[str]
    ) -> bool:
        words = list(extras)
        stated = self._qualifiers([words])
        for group, values in stated.items():
            permitted = set(allowed.get(group, set()))
            if "infectious" in permitted:
                permitted |= _INFECTIOUS
            if permitted and not values <= permitted:
                return True
        return any(
            w.startswith(NEGATING_PREFIXES)
            and (w in NEGATING_PREFIXES or len(w) >= 6)
            and w not in own
            for w in words
        )

    @staticmethod
    def verbatim(stated: str, truth: str) -> bool:
        """Whether ``stated`` is the truth's own text (case, spacing, punctuation aside)."""
        key = _phrase(truth)
        return bool(key) and _phrase(stated) == key

    def truth_disease(self, truth: str) -> tuple[str | None, Reading | None]:
        """The catalogue disease a truth names (its id, or a text whose head names it), if any."""
        if truth in self.kb.disease_index:
            return truth, None
        reading = self.read(truth)
        concepts = reading.concepts
        if len(concepts) == 1 and not reading.hedged and len(concepts[0]) == 1:
            (disease_id,) = concepts[0]
            mention = reading.committed[0]
            if not mention.broader and not self._conflict(
                reading.extras, self.allowed[disease_id], self.own_words[disease_id]
            ):
                return disease_id, reading
        return None, reading

    def same(self, stated: str, truth: str, truth_aliases: Iterable[str] = ()) -> bool:
        """Whether ``stated`` commits to the diagnosis ``truth`` (a disease id or a text).

        ``truth_aliases`` are other texts the truth may be given as (each judged like the truth).
        """
        candidates = [truth, *truth_aliases]
        if any(self.verbatim(stated, c) for c in candidates if c not in self.kb.disease_index):
            return True
        reading = self.read(stated)
        if reading.hedged or len(reading.concepts) > 1:
            return False
        return any(self._same_as(reading, candidate) for candidate in candidates)

    def _same_as(self, reading: Reading, truth: str) -> bool:
        disease_id, truth_reading = self.truth_disease(truth)
        if disease_id is not None:
            if not reading.committed:
                return False
            mention = reading.committed[0]
            if mention.broader:
                return self.accept_broader and disease_id in mention.ids
            if mention.ids != {disease_id}:
                return False
            allowed = {g: set(v) for g, v in self.allowed[disease_id].items()}
            if truth_reading is not None:
                for group, values in self._qualifiers([list(truth_reading.extras)]).items():
                    allowed.setdefault(group, set()).update(values)
            return not self._conflict(reading.extras, allowed, self.own_words[disease_id])
        if truth_reading is None or not truth_reading.head:
            return False
        # A truth outside the catalogue: the answer's head holds the truth's head word for
        # word, with a few words of detail at most (not a list), none negating or conflicting;
        # or the head holds the truth's main word and the rest of the truth follows as its
        # cause ("liver abscess due to Klebsiella" for "Klebsiella liver abscess").
        truth_head = tuple(t for t in truth_reading.head if t not in _FILLER_WORDS)
        stated_head = [t for t in reading.head if t not in _FILLER_WORDS]
        if not truth_head or not stated_head:
            return False
        at = _find(stated_head, truth_head)
        if at >= 0:
            rest = stated_head[:at] + stated_head[at + len(truth_head) :]
        elif (
            truth_head[-1] in stated_head
            and set(stated_head) <= set(truth_head)
            and set(truth_head) <= set(reading.tokens[: reading.head_end + MAX_DETAIL_WORDS + 2])
        ):
            rest = []
        else:
            return False
        if len(rest) > MAX_DETAIL_WORDS or self._mentions(rest):
            return False
        cues = {w for cue in NEGATIONS_BEFORE + NEGATIONS_AFTER for w in cue.split()}
        if cues & set(rest):
            return False
        return not self._conflict(rest, self._qualifiers([list(truth_head)]), set(truth_head))


def shared_diagnosis_matcher(
    kb: KnowledgeBase, *, accept_broader: bool = False
) -> DiagnosisMatcher:
    """One :class:`DiagnosisMatcher` per catalogue and setting, shared by every env of the
    process: building one reads every disease name for its qualifiers (about 19 ms, most of
    a DiagGym-v0 construction), and a matcher only reads its tables after that (its
    spelling-correction memo is a bounded cache of a pure function)."""
    return _shared_diagnosis_matcher(kb, accept_broader)


@functools.cache
def _shared_diagnosis_matcher(kb: KnowledgeBase, accept_broader: bool) -> DiagnosisMatcher:
    return DiagnosisMatcher(kb, accept_broader=accept_broader)
