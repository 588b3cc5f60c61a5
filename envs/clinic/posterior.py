"""The exact posterior over diagnoses under the case model.

Given the diagnosis, every feature of a case is drawn independently (the case
model is a naive-Bayes network), so after observing features ``x_1..x_k``

    P(d | x) ∝ P(d) Π_i P(x_i | d)

and unobserved features marginalise out. The features are the case's latent
variables (a derived result such as chloride or SpO2 reveals the latent
variables it is computed from). A symptom's table depends on the chief
complaint (its pertinent negatives), which is always observed first. An
observation may be a group of levels (the triage note tells only that a symptom
was ``not_volunteered``); the history's finer report later replaces it.
Entropies are in nats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rounds.envs.clinic.knowledge import KnowledgeBase


def entropy(probs: np.ndarray) -> float:
    """Shannon entropy ``-Σ p log p`` in nats (zero-probability terms count 0)."""
    nonzero = probs[probs > 0]
    return float(-(nonzero * np.log(nonzero)).sum())


def normalise_log(log_weights: np.ndarray) -> np.ndarray:
    """Probabilities from unnormalised log-weights (stable softmax; all -inf gives uniform)."""
    top = np.max(log_weights)
    if not np.isfinite(top):
        return np.full_like(log_weights, 1.0 / len(log_weights))
    weights = np.exp(log_weights - top)
    probs: np.ndarray = weights / weights.sum()
    return probs


class Posterior:
    """The posterior over the knowledge base's diagnoses, updated one observation at a time."""

    def __init__(self, kb: KnowledgeBase, candidates: Sequence[str] | None = None) -> None:
        """``candidates``: disease ids the case is known to be one of (an env's
        ``diagnoses``); the others get probability 0."""
        self.kb = kb
        self.log_weights = kb.log_prior.copy()
        if candidates is not None:
            keep = np.zeros(len(kb.diseases), dtype=bool)
            keep[[kb.disease_index[d] for d in candidates]] = True
            self.log_weights[~keep] = -np.inf
        self.observed: dict[str, str] = {}
        self._probs: np.ndarray | None = None

    def observe(self, key: str, level: str) -> bool:
        """Condition on feature ``key`` having ``level``; False (no change) if already known.

        ``level`` may be a group of levels (a symptom ``not_volunteered`` at triage);
        a later, finer level of the same feature (the history's ``denied``) replaces
        it: ``P(fine | d) / P(group | d)`` is the update, which is exact because what
        the coarse observation adds to the fine one does not depend on the diagnosis.

        Raises:
            ValueError: ``level`` contradicts what is already known of ``key``.
        """
        table = self.kb.table(key, self.observed.get("complaint"))
        update = table.log_probability(level)
        known = self.observed.get(key)
        if known is not None:
            if level == known or set(table.groups[known]) <= set(table.groups[level]):
                return False
            if not table.refines(known, level):
                raise ValueError(
                    f"{key}: {level!r} contradicts the earlier observation {known!r}; one case "
                    "reports one state of each feature"
                )
            update = update - table.log_probability(known)
        self.log_weights = self.log_weights + update
        self.observed[key] = level
        self._probs = None
        return True

    def pending(self, key: str) -> np.ndarray | None:
        """``P(level | d, what is known of key)``, ``(diagnoses, levels)``; None once its level is known.

        What observing ``key`` could still tell: its whole table when unobserved, the
        levels within the group observed so far otherwise (a triage note's
        ``not_volunteered`` symptom can still be denied by the history).
        """
        table = self.kb.table(key, self.observed.get("complaint"))
        known = self.observed.get(key)
        if known is not None and known in table.level_index:
            return None
        return table.conditional(known)

    def observe_all(self, observations: Mapping[str, str]) -> None:
        for key, level in observations.items():
            self.observe(key, level)

    @property
    def probs(self) -> np.ndarray:
        if self._probs is None:
            self._probs = normalise_log(self.log_weights)
        return self._probs

    @property
    def entropy(self) -> float:
        return entropy(self.probs)

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable diagnoses with their probabilities."""
        order = np.argsort(-self.probs, kind="stable")[:k]
        return [(self.kb.diseases[i].id, float(self.probs[i])) for i in order]

    def probability(self, disease_id: str) -> float:
        return float(self.probs[self.kb.disease_index[disease_id]])
