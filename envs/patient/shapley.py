"""Shapley values of a case's hidden facts for the gold answer (ProMed's information gain).

The game: the players are the ``n`` hidden facts; a coalition ``S`` is worth
``v(S)``, the value function's belief in the gold answer once the shown facts and
``S`` are known. Fact ``i``'s Shapley value is

    φ_i = Σ_{S ⊆ N \\ {i}} |S|! (n − |S| − 1)! / n! · (v(S ∪ {i}) − v(S))

and the values are efficient: ``Σ_i φ_i = v(N) − v(∅)``. Up to
:data:`EXACT_MAX_FACTS` facts every coalition is evaluated (2^n values, one
vectorised call); above, permutation Monte Carlo averages each fact's marginal
contribution over random orders until every φ_i's 95% half-width
(1.96 × standard error) is below ``tolerance`` or ``max_permutations`` is reached.

Value functions (all return probabilities of the gold answer, in [0, 1]):

- :class:`AdditiveValue`: ``v(S) = softmax(base + Σ_{i∈S} c_i)[gold]`` over a set of
  candidate answers. The ``knowledge`` value function is one: the case model is
  naive Bayes, so ``c_i`` is fact ``i``'s log-likelihood under each candidate
  diagnosis and ``v`` is the exact posterior of the gold diagnosis among the
  options (all diagnoses for a consultation). The ``lexical`` value function is
  another: ``c_i`` is fact ``i``'s BM25 relevance to each option's text (BM25 is a
  sum over query terms, so a coalition's score is the sum of its facts' scores).
- :class:`PolicyValue`: ``v(S) = exp(mean_j log π(ans_j | prompt(S)))``, the
  language model's teacher-forced probability of the gold reply, computed with the
  trainer's scorer (:func:`rounds.trainers.info_gain.answer_logprobs`, the one IGPO uses).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

#: Exact enumeration up to this many hidden facts (2^12 = 4096 coalitions).
EXACT_MAX_FACTS = 12
#: Monte Carlo stops when every φ_i's 95% half-width is below this.
MC_TOLERANCE = 0.01
MC_MAX_PERMUTATIONS = 4000
MC_BATCH = 64


class ValueFunction(Protocol):
    """``v`` over coalitions of the ``n`` hidden facts, given as bitmasks."""

    @property
    def n(self) -> int:
        """How many hidden facts (players) there are."""
        ...

    def values(self, masks: np.ndarray) -> np.ndarray:
        """``v(S)`` for each bitmask ``S`` (bit ``i`` set: hidden fact ``i`` is known)."""
        ...


def mask_bits(masks: np.ndarray, n: int) -> np.ndarray:
    """A ``(len(masks), n)`` 0/1 matrix: which facts each bitmask holds."""
    return ((np.asarray(masks, dtype=np.int64)[:, None] >> np.arange(n)) & 1).astype(float)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits - top)
    result: np.ndarray = weights / weights.sum(axis=-1, keepdims=True)
    return result


@dataclass
class AdditiveValue:
    """``v(S) = softmax((base + Σ_{i∈S} c_i) / temperature)[gold]`` over candidate answers."""

    base: np.ndarray
    """``(k,)`` logits of the k candidates from the shown facts."""
    contributions: np.ndarray
    """``(n, k)``: what each hidden fact adds to the logits."""
    gold: int
    temperature: float = 1.0

    @property
    def n(self) -> int:
        return int(self.contributions.shape[0])

    def probabilities(self, masks: np.ndarray) -> np.ndarray:
        """``(len(masks), k)``: every candidate's probability for each coalition."""
        logits = self.base[None, :] + mask_bits(masks, self.n) @ self.contributions
        return softmax_rows(logits / self.temperature)

    def values(self, masks: np.ndarray) -> np.ndarray:
        return self.probabilities(masks)[:, self.gold]


class PolicyValue:
    """A language model's probability of the gold reply given the facts (teacher forcing).

    Args:
        model, tokenizer: a causal LM and its tokenizer (transformers).
        prompt: ``prompt(indices of known hidden facts) -> chat messages``.
        answer: the gold reply text (e.g. ``"answer: C"``).
        batch_size: contexts per forward pass.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompt: Callable[[list[int]], list[dict[str, str]]],
        answer: str,
        n: int,
        *,
        batch_size: int = 16,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.answer_ids = list(tokenizer(answer, add_special_tokens=False).input_ids)
        self._n = n
        self.batch_size = batch_size
        self._cache: dict[int, float] = {}

    @property
    def n(self) -> int:
        return self._n

    def values(self, masks: np.ndarray) -> np.ndarray:
        from rounds.trainers.info_gain import answer_logprobs

        wanted = [int(m) for m in dict.fromkeys(int(m) for m in masks) if int(m) not in self._cache]
        if wanted:
            contexts = []
            for mask in wanted:
                known = [i for i in range(self.n) if mask >> i & 1]
                ids = self.tokenizer.apply_chat_template(
                    self.prompt(known), add_generation_prompt=True, tokenize=True
                )
                if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                    ids = ids["input_ids"]
                contexts.append([int(t) for t in ids])
            logps = answer_logprobs(
                self.model,
                contexts,
                self.answer_ids,
                pad_id=int(self.tokenizer.pad_token_id),
                batch_size=self.batch_size,
            )
            for mask, logp in zip(wanted, logps, strict=True):
                self._cache[mask] = math.exp(logp)
        return np.array([self._cache[int(m)] for m in masks], dtype=float)


# ------------------------------------------------------------------ Shapley values


@dataclass
class ShapleyResult:
    """Each hidden fact's Shapley value, how it was computed, and its uncertainty."""

    phi: np.ndarray
    method: str
    """``exact`` or ``monte_carlo``."""
    v_empty: float
    v_all: float
    half_width: np.ndarray
    """The 95% half-width of each φ_i (zeros when exact)."""
    permutations: int = 0


def _coalition_weights(n: int) -> np.ndarray:
    """``|S|! (n − |S| − 1)! / n!`` for coalition sizes 0..n−1."""
    return np.array(
        [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    )


def exact_shapley(value: ValueFunction) -> ShapleyResult:
    """Shapley values by enumerating all ``2^n`` coalitions."""
    n = value.n
    if n == 0:
        v0 = float(value.values(np.array([0]))[0])
        return ShapleyResult(np.zeros(0), "exact", v0, v0, np.zeros(0))
    if n > 20:
        raise ValueError(
            f"exact Shapley values of {n} facts need 2^{n} evaluations; use Monte Carlo"
        )
    masks = np.arange(1 << n, dtype=np.int64)
    v = np.asarray(value.values(masks), dtype=float)
    phi = shapley_from_table(v, n)
    return ShapleyResult(phi, "exact", float(v[0]), float(v[-1]), np.zeros(n))


def shapley_from_table(v: np.ndarray, n: int) -> np.ndarray:
    """Shapley values from every coalition's value ``v[mask]`` (``(2^n,)`` or ``(2^n, k)`` for k games)."""
    masks = np.arange(1 << n, dtype=np.int64)
    sizes = mask_bits(masks, n).sum(axis=1).astype(int)
    weights = _coalition_weights(n)
    phi = np.zeros((n, *v.shape[1:]))
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        w = weights[sizes[without]].reshape(-1, *([1] * (v.ndim - 1)))
        phi[i] = np.sum(w * (v[without | (1 << i)] - v[without]), axis=0)
    return phi


#: :func:`candidate_shapley` enumerates up to this many facts.
CANDIDATE_MAX_FACTS = 16


def candidate_shapley(value: AdditiveValue) -> np.ndarray | None:
    """``(n, k)``: each fact's Shapley value for each candidate answer as the target (None above
    :data:`CANDIDATE_MAX_FACTS` facts). Row sums are 0: what one answer gains, others lose."""
    n = value.n
    if n > CANDIDATE_MAX_FACTS:
        return None
    if n == 0:
        return np.zeros((0, len(value.base)))
    return shapley_from_table(value.probabilities(np.arange(1 << n, dtype=np.int64)), n)


def monte_carlo_shapley(
    value: ValueFunction,
    rng: np.random.Generator,
    *,
    tolerance: float = MC_TOLERANCE,
    max_permutations: int = MC_MAX_PERMUTATIONS,
    batch: int = MC_BATCH,
) -> ShapleyResult:
    """Permutation Monte Carlo: average marginal contributions over random fact orders.

    Stops once every φ_i's 95% half-width (1.96 × standard error over permutations)
    is at most ``tolerance``, or after ``max_permutations``. Each permutation's
    contributions sum to ``v(N) − v(∅)``, so the estimate is efficient exactly.
    """
    n = value.n
    if n == 0:
        return exact_shapley(value)
    total = np.zeros(n)
    total_sq = np.zeros(n)
    count = 0
    ends = value.values(np.array([0, (1 << n) - 1], dtype=np.int64))
    half_width = np.full(n, np.inf)
    while count < max_permutations:
        size = min(batch, max_permutations - count)
        orders = np.argsort(rng.random((size, n)), axis=1)
        prefix = np.zeros((size, n + 1), dtype=np.int64)
        prefix[:, 1:] = np.cumsum(np.int64(1) << orders.astype(np.int64), axis=1)
        v = value.values(prefix.reshape(-1)).reshape(size, n + 1)
        gains = np.diff(v, axis=1)
        contributions = np.zeros((size, n))
        np.put_along_axis(contributions, orders, gains, axis=1)
        total += contributions.sum(axis=0)
        total_sq += (contributions**2).sum(axis=0)
        count += size
        if count >= 2:
            mean = total / count
            variance = np.maximum(total_sq / count - mean**2, 0.0) * count / (count - 1)
            half_width = 1.96 * np.sqrt(variance / count)
            if float(half_width.max()) <= tolerance:
                break
    return ShapleyResult(
        total / count, "monte_carlo", float(ends[0]), float(ends[1]), half_width, count
    )


def shapley_values(
    value: ValueFunction,
    *,
    exact_max_facts: int = EXACT_MAX_FACTS,
    tolerance: float = MC_TOLERANCE,
    max_permutations: int = MC_MAX_PERMUTATIONS,
    seed: int = 0,
) -> ShapleyResult:
    """Exact up to ``exact_max_facts`` hidden facts, permutation Monte Carlo above."""
    if value.n <= exact_max_facts:
        return exact_shapley(value)
    return monte_carlo_shapley(
        value,
        np.random.default_rng(seed),
        tolerance=tolerance,
        max_permutations=max_permutations,
    )


def fact_weights(
    phi: np.ndarray, weighting: str = "shapley", temperature: float = 2.0
) -> np.ndarray:
    """What acquiring each fact earns: ``φ`` itself, or ProMed's ``softmax(φ / 2)``."""
    if weighting == "shapley":
        return np.asarray(phi, dtype=float)
    if weighting == "softmax":
        if len(phi) == 0:
            return np.zeros(0)
        weights: np.ndarray = softmax_rows(np.asarray(phi, dtype=float)[None, :] / temperature)[0]
        return weights
    raise ValueError(f"unknown gain weighting {weighting!r}; choose shapley or softmax")


def brute_force_shapley(value: ValueFunction) -> np.ndarray:
    """Shapley values from the definition over all ``n!`` orders (for tests; n ≤ 8)."""
    import itertools

    n = value.n
    phi = np.zeros(n)
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        mask = 0
        before = float(value.values(np.array([0]))[0])
        for i in order:
            mask |= 1 << i
            after = float(value.values(np.array([mask]))[0])
            phi[i] += after - before
            before = after
    return phi / len(orders)


def coalition_mask(indices: Sequence[int]) -> int:
    mask = 0
    for i in indices:
        mask |= 1 << i
    return mask
