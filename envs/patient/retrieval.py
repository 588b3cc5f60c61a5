"""Lexical matching with BM25 (``bm25s``): a doctor's question to a case's facts, and facts to options.

One tokenizer serves both uses: lower case, words of two or more characters (numbers
with their decimals kept whole), a stop list of function words and question
words, and a light suffix stemmer, so "coughing", "coughs" and "cough" meet.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import bm25s
import numpy as np

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z][a-z0-9']*[a-z0-9]")

#: Function words, pronouns, question words, politeness and vague nouns ("trouble", "problem"):
#: they carry no facts, and a match on them alone would reveal an unrelated fact.
STOPWORDS = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the their then
    there these they this to was will with do does did you your yours have has had having any
    ever been being i me my mine we our us he she him her his hers them what which who whom whose
    when where why how can could would should shall may might must am were so than too very just
    also about tell please describe lately recently currently now today notice noticed noticing
    experience experienced experiencing feel feeling felt get got getting go going some much many
    more most other others all anything something everything nothing yes yeah okay ok well let
    s t d ll re ve m o y from up out over under again further once here there both each few own
    same only its it's i'm i've you've you're don't didn't doesn't isn't aren't wasn't
    trouble troubles problem problems issue issues lot lots bit really like thing things kind sort
    way time times""".split()  # noqa: SIM905
)

_SUFFIXES = ("ations", "ation", "ings", "ing", "edly", "ies", "ied", "ness", "ed", "es", "s", "ly")
#: "-es" is a plural ending only after these ("rashes", "boxes"); else only the "s" goes ("seizures").
_ES_AFTER = ("s", "x", "z", "ch", "sh")


def stem(word: str) -> str:
    """A light suffix stemmer (plural, -ing, -ed, -ly, -ness, -ation, a final -e), never below 3 letters.

    The final "e" goes too, so "ache", "aches" and "headaches" meet as "ach", "headach".
    """
    if word[0].isdigit():
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if suffix == "es" and not base.endswith(_ES_AFTER):
                base = word[:-1]
            if suffix in ("ies", "ied"):
                return base + "y"
            if len(base) > 3 and base[-1] == base[-2] and base[-1] not in "aeiouls":
                base = base[:-1]  # "stopped" -> "stop"
            word = base
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """The stemmed content words of ``text``."""
    words = _TOKEN.findall(text.lower().replace("’", "'"))
    return [stem(w.strip("'")) for w in words if w not in STOPWORDS and w.strip("'")]


class BM25Index:
    """A BM25 index over a handful of documents (a case's facts, a question's options)."""

    def __init__(self, documents: Sequence[str]) -> None:
        if not documents:
            raise ValueError("a BM25 index needs at least one document")
        self.size = len(documents)
        tokens = [tokenize(doc) or ["\x00empty"] for doc in documents]
        self._bm25 = bm25s.BM25()
        self._bm25.index(tokens, show_progress=False)

    def scores(self, text: str) -> np.ndarray:
        """Each document's BM25 score for the query ``text`` (zeros when nothing matches)."""
        tokens = tokenize(text)
        return self.scores_of(tokens)

    def scores_of(self, tokens: Sequence[str]) -> np.ndarray:
        if not tokens:
            return np.zeros(self.size)
        return np.asarray(self._bm25.get_scores(list(tokens)), dtype=float)
