"""The FAQ matcher's stage-2 ranking score (pure; stdlib only).

`faq.matcher` re-ranks its best few candidate entries on a feature vector each. A
linear score alone cannot weigh one scorer by another (a high character-gram
similarity means more when the term cosine is low, a short message's word cosine
more than a long one's), so the score is a linear part plus a small tanh hidden
layer::

    score(x) = linear · x + sum_j out[j] * tanh(bias[j] + hidden[j] · x)

fitted, like the linear weights, as the logit of a softmax over each message's
candidates (`python -m bench.faq_bench --fit-order`). It only orders the
candidates: the matcher's confidence still reads the linear score. On the dev splits
(2-fold, the four faq-bench tasks) four hidden units take top-1 accuracy from
0.715 to 0.724 on average, and to 0.727 with one more input, `best_jaccard`
(BANKING77 k5 0.690 -> 0.708, k10 0.783 -> 0.794, CLINC150 k5 0.637 -> 0.644,
k10 0.749 -> 0.762; 8 or 16 units are no better). The linear score alone gains
nothing from more lexical features (word bigrams, other rapidfuzz scorers, kNN
votes over phrasings, that Jaccard: each within +-0.3 points).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence

__all__ = ["best_jaccard", "ranking_scores"]


def best_jaccard(qterms: frozenset[str], termsets: Iterable[frozenset[str]]) -> float:
    """The best Jaccard similarity |q ∩ p| / |q ∪ p| of the message's terms `qterms`
    to one of the phrasings' term sets. Unlike the IDF-weighted cosines it counts
    every term the same, so a phrasing that says just what the message says (and
    nothing else) stands out from one sharing only its rarest word."""
    best = 0.0
    nq = len(qterms)
    for ts in termsets:
        common = len(qterms.intersection(ts))
        if common:
            best = max(best, common / (nq + len(ts) - common))
    return best


def ranking_scores(
    feats: Sequence[tuple[float, ...]],
    linear: tuple[float, ...],
    hidden: tuple[tuple[float, ...], ...],
    hidden_bias: tuple[float, ...],
    out: tuple[float, ...],
) -> list[float]:
    """The ranking score of every feature vector of `feats` (see the module
    docstring). About 4 µs per candidate with four hidden units (one C-level
    `sum(map(...))` per unit; a flat one-`map` form is no faster)."""
    mul = operator.mul
    tanh = math.tanh
    units = tuple(zip(hidden, hidden_bias, out))
    scores = []
    for f in feats:
        z = sum(map(mul, linear, f))
        for row, b, o in units:
            z += o * tanh(b + sum(map(mul, row, f)))
        scores.append(z)
    return scores
