"""FAQ matcher: text in, ranked FAQ entries with a calibrated confidence out (pure).

Imports nothing of ours except `faq.normalise`; only the stdlib and rapidfuzz.

Public API (stable; the responder, store and editor code against it)::

    FaqDoc(id, question, alternates=())     one FAQ entry's phrasings
    Candidate(id, confidence)               one ranked entry
    MatchResult(entry_id, confidence, candidates)
    Matcher(docs=())                        the index
        .upsert(doc)                        add or replace one entry (incremental)
        .remove(doc_id)                     drop one entry (incremental; unknown ids ignored)
        len(matcher)                        number of entries
        .match(text, limit=3) -> MatchResult
    DEFAULT_THRESHOLD                       confidence with ~95 % precision on dev

`MatchResult.entry_id` is the best entry (None only when the FAQ is empty) and
`confidence` is the estimated probability that it is the right answer, in 0..1. It
already accounts for the margin to the runner-up entry and for words of the message
that no entry knows, so a responder should answer iff ``confidence >= threshold``
(and the signals in `faq.signals` do not object). Candidate confidences after the
first are the same calibration applied to that entry's own score and margin.

How it works:

1. `faq.normalise.terms` reduces every phrasing and message to terms (stemmed words
   without stop words, number classes, Korean stems and syllable bigrams).
2. An inverted index maps each term to the entries (and phrasings) that contain it;
   term weights are BM25-style IDF over *entries*, computed from the current
   document frequencies at query time, so an upsert or remove only touches the
   postings of that entry's terms. Message terms unknown to the FAQ are corrected
   to a known term one edit away (deletion-neighbourhood index; jamo-level for
   Hangul) before weighting.
3. Candidate entries are those sharing weighted terms with the message. The best
   `_POOL` (by shared IDF) get cheap term features: weighted cosine to their best
   and second-best phrasing and to the entry centroid, the share of the message's
   weight the entry covers (and of the best phrasing's weight the message covers),
   the share of message terms it has, the heaviest message term it lacks,
   question-word agreement (how/when/what...) and term-bigram overlap. A linear
   stage-1 score keeps the best `_RERANK`, which also get an IDF-weighted cosine of
   the surface words with stop words kept ("what is your name"), rapidfuzz scorers
   on the normalised strings, and the cosine of the message's character 3-5-grams
   to the entry's gram centroid (typos, compounds, stems the stemmer misses).
   Word and gram IDFs are over entries too, maintained incrementally like terms.
4. A fixed linear ranking score orders the candidates, and a fixed logistic
   function of the top score, the margin to the runner-up (a different entry), its
   softmax share, the message coverage, the agreement of the individual scorers
   (each one's lead over the best other candidate), what the entry leaves
   unexplained and the FAQ size gives the confidence, capped at `_COVER_CAP` times
   the covered share of the message. The coefficients were fitted offline on the
   dev splits of BANKING77 and CLINC150 (`python -m bench.faq_bench --fit`: every
   dev query weighted so each task counts the same, plus random 5/10/25/half-size
   sub-FAQs for the confidence); nothing is refitted at run time.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from faq.normalise import fold, is_hangul, jamo, terms, words

__all__ = [
    "DEFAULT_THRESHOLD",
    "Candidate",
    "FaqDoc",
    "MatchResult",
    "Matcher",
]


@dataclass(frozen=True)
class FaqDoc:
    """One FAQ entry as the matcher sees it: an id and its phrasings."""

    id: str
    question: str
    alternates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """One ranked entry and its calibrated confidence (0..1)."""

    id: str
    confidence: float


@dataclass(frozen=True)
class MatchResult:
    """The matcher's answer for one message: the top entry (None only if the FAQ is
    empty), its calibrated confidence, and up to `limit` candidates best first."""

    entry_id: str | None
    confidence: float
    candidates: tuple[Candidate, ...]


# --- fitted constants ---------------------------------------------------------------
# All fitted offline by `python -m bench.faq_bench --fit` on dev data only: BANKING77
# train utterances 11-20 per intent and CLINC150 val + oos_val, with K=5 and K=10
# phrasings per entry, each of the four tasks weighted equally. Never refitted at run
# time. Paste the printed values here after changing a feature.
#
# Ranking weights, fitted with a softmax-over-candidates (conditional logit) objective.
# Stage 1 features: best-phrasing cosine, centroid cosine, message coverage,
# second-best phrasing cosine, best phrasing's coverage, message length class,
# share of message terms matched, heaviest missing term, question-word agreement,
# term-bigram overlap. Stage 2 adds: surface-word cosine (stop words kept),
# rapidfuzz token_set_ratio on terms, rapidfuzz ratio on folded text, character
# 3-5-gram centroid cosine.
RANK1_WEIGHTS: tuple[float, ...] = (1.343, 4.468, 2.752, 1.449, 1.848, -0.0, 3.223, 0.654, 0.963, 1.037)
RANK_WEIGHTS: tuple[float, ...] = (0.603, 2.175, 1.912, 0.703, 0.603, 0.0, 2.509, 0.059, 0.762, 0.272, 1.513, 1.306, 3.227, 4.102)
# Confidence = sigmoid(CONF_BIAS + CONF_WEIGHTS · x + sum_j CONF_OUT[j] *
# tanh(CONF_HIDDEN_BIAS[j] + CONF_HIDDEN[j] · x)) with x = `_calibration_x`: a
# logistic regression with a small hidden layer beside its linear part (fitted on
# standardised x, folded back to raw x) of "is the top-1 entry right?" on the same
# dev sets (CLINC150 oos_val is never right), plus random 5-, 10-, 25- and half-size
# sub-FAQs of them whose left-out entries' queries become out-of-scope messages, so
# that the threshold keeps its precision on small FAQs too. Without numpy the fit
# leaves the hidden layer empty (linear model only).
CONF_WEIGHTS: tuple[float, ...] = (0.0251, 0.1003, 0.0747, 0.7555, 0.1116, 0.1806, 0.0284, -0.0959, 0.0826, -0.081, 0.5601, 0.8254, 0.8204, 0.4684, 0.2117, -0.0053, -0.0705, 0.0121, 0.0023, -0.1313, 0.1355, 0.1666, -0.149, 1.8741, 1.2584, 0.3381, 0.0087, 0.3807, 0.2064, 0.7169, 0.4947, 0.8974, -1.294)
CONF_HIDDEN: tuple[tuple[float, ...], ...] = (
    (0.0353, -0.0014, -0.0031, 0.0065, -0.1026, 0.0249, 0.2201, 0.0707, 0.5879, 0.6637, 0.7125, 1.2803, 0.0112, 0.1823, 0.0595, 0.091, -0.0102, -0.0014, -0.0033, -0.2335, 0.2862, -0.1219, -0.0607, 0.6336, 0.6249, -0.2098, 0.1305, 0.0125, 0.4945, 1.1342, -0.0672, 0.062, -0.311),
    (0.0354, -0.0015, -0.0032, 0.0062, -0.103, 0.0248, 0.2203, 0.0708, 0.5886, 0.6655, 0.7143, 1.2831, 0.011, 0.1832, 0.0598, 0.0911, -0.0103, -0.0014, -0.0033, -0.2337, 0.2865, -0.1219, -0.0606, 0.6344, 0.6252, -0.2104, 0.1307, 0.0126, 0.4955, 1.136, -0.067, 0.0619, -0.3112),
)
CONF_HIDDEN_BIAS: tuple[float, ...] = (-1.938, -1.9425)
CONF_OUT: tuple[float, ...] = (0.4114, 0.4123)
CONF_BIAS: float = -2.1712
# The confidence at which the four full dev FAQs, pooled with equal weight, reach
# 95 % precision.
DEFAULT_THRESHOLD: float = 0.839

# How many entries survive candidate generation (summed IDF of shared terms) to be
# re-scored on weighted-term features: on dev, the right entry is among the first 24
# for 97 % (BANKING77) / 89 % (CLINC150) of in-scope queries, and among all entries
# sharing a term for 99 % / 91 %.
_POOL = 24
# How many of those are re-ranked with the slower features as well (surface words,
# rapidfuzz, character grams); 12 is no better on dev (refitted) and 25 % slower.
_RERANK = 8
# Confidence never exceeds this multiple of the share of the message's term weight
# the entry covers (chosen on dev: 3 keeps dev coverage@95 within 0.01).
_COVER_CAP = 3.0
# Margin assumed in a one-entry FAQ (about the dev median margin of right answers).
_LONE_MARGIN = 3.0
# BM25 IDF smoothing: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), always > 0.
_IDF_HALF = 0.5
# Terms shorter than this are never spelling-corrected: too many neighbours.
_MIN_CORRECT_LEN = 4
# Query character grams weigh in only with at least this squared IDF (a gram in
# about half the entries has 0.5, a rare one 10-20): common grams cost time for
# almost no signal.
_MIN_GRAM_IDF2 = 1.0
# A corrected term counts for this share of its weight: the correction may be wrong.
_CORRECTED_WEIGHT = 0.8


@dataclass
class _Phrasing:
    text: str  # folded, for rapidfuzz
    termstr: str  # the terms joined by spaces, for rapidfuzz token scorers
    termset: frozenset[str]
    bigrams: frozenset[tuple[str, str]]  # adjacent term pairs
    wh: frozenset[str]  # its question words (what, how, when, ...)
    words: frozenset[str]  # surface words, stop words kept
    norm: float = 0.0  # sqrt(sum idf^2) over termset, under the IDF of `_Entry.stamp`
    mass: float = 0.0  # sum idf over termset, same
    wnorm: float = 0.0  # sqrt(sum word idf^2) over words, same


@dataclass
class _Entry:
    doc: FaqDoc
    phrasings: list[_Phrasing]
    tf: dict[str, int] = field(default_factory=dict)  # term -> phrasings containing it
    gtf: dict[str, int] = field(default_factory=dict)  # char gram -> phrasings containing it
    wset: frozenset[str] = frozenset()  # all its surface words
    gset: frozenset[str] = frozenset()  # all its char grams (the keys of gtf)
    norm: float = 0.0  # centroid norm: sqrt(sum (idf * tf)^2)
    gcnorm: float = 0.0  # char-gram centroid norm: sqrt(sum (gram idf * gtf)^2)
    stamp: int = -1  # the index version the cached norms were computed under


class Matcher:
    """An incrementally updated FAQ index; see the module docstring."""

    def __init__(self, docs: Iterable[FaqDoc] = ()) -> None:
        self._entries: dict[str, _Entry] = {}
        self._postings: dict[str, dict[str, int]] = {}  # term -> {entry id: tf}
        self._neighbours: dict[str, set[str]] = {}  # deletion variant -> terms
        # Every edit bumps the version and drops the IDF cache; entry norms are then
        # recomputed lazily when next scored (no full rebuild on an editor's save).
        self._version = 0
        self._idf_cache: dict[str, float] = {}
        # Entry frequencies of surface words and character grams (their IDF weighs the
        # stop-word-keeping and character-level similarities).
        self._word_df: dict[str, int] = {}
        self._gram_df: dict[str, int] = {}
        self._widf_cache: dict[str, float] = {}
        self._gidf_cache: dict[str, float] = {}
        for doc in docs:
            self.upsert(doc)
        # A bulk build computes every entry's norms now rather than on each entry's
        # first match (edits later still refresh lazily).
        for entry in self._entries.values():
            self._refresh(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._entries

    # --- index maintenance ------------------------------------------------------------
    def upsert(self, doc: FaqDoc) -> None:
        """Add `doc`, or replace the entry with the same id. Touches only the postings of
        that entry's terms; later matches see the change immediately."""
        if doc.id in self._entries:
            self.remove(doc.id)
        phrasings: list[_Phrasing] = []
        seen: set[str] = set()
        for text in (doc.question, *doc.alternates):
            folded = fold(text)
            if not folded or folded in seen:
                continue
            seen.add(folded)
            ts = terms(text)
            phrasings.append(
                _Phrasing(
                    folded, " ".join(ts), frozenset(ts), frozenset(zip(ts, ts[1:])),
                    _WH.intersection(ts), frozenset(words(text)),
                )
            )
        self._touch()
        entry = _Entry(doc, phrasings)
        wset: set[str] = set()
        for p in phrasings:
            for t in p.termset:
                entry.tf[t] = entry.tf.get(t, 0) + 1
            for g in _grams(p.text):
                entry.gtf[g] = entry.gtf.get(g, 0) + 1
            wset |= p.words
        entry.wset = frozenset(wset)
        entry.gset = frozenset(entry.gtf)
        _count(self._word_df, entry.wset, 1)
        _count(self._gram_df, entry.gtf, 1)
        for t, n in entry.tf.items():
            posting = self._postings.get(t)
            if posting is None:
                posting = self._postings[t] = {}
                self._add_neighbours(t)
            posting[doc.id] = n
        self._entries[doc.id] = entry

    def remove(self, doc_id: str) -> None:
        """Drop the entry `doc_id` if present (unknown ids are ignored)."""
        entry = self._entries.pop(doc_id, None)
        if entry is None:
            return
        self._touch()
        _count(self._word_df, entry.wset, -1)
        _count(self._gram_df, entry.gtf, -1)
        for t in entry.tf:
            posting = self._postings[t]
            del posting[doc_id]
            if not posting:
                del self._postings[t]
                self._drop_neighbours(t)

    def _touch(self) -> None:
        self._version += 1
        self._idf_cache.clear()
        self._widf_cache.clear()
        self._gidf_cache.clear()

    def _add_neighbours(self, term: str) -> None:
        for v in _variants(term):
            self._neighbours.setdefault(v, set()).add(term)

    def _drop_neighbours(self, term: str) -> None:
        for v in _variants(term):
            bucket = self._neighbours.get(v)
            if bucket is not None:
                bucket.discard(term)
                if not bucket:
                    del self._neighbours[v]

    # --- matching ---------------------------------------------------------------------
    def match(self, text: str, *, limit: int = 3) -> MatchResult:
        """Return the best entries for `text`, best first (at most `limit`), with
        calibrated confidences. Never raises on odd input; an empty FAQ gives
        ``MatchResult(None, 0.0, ())`` and a message with no usable words gives the
        best guess with confidence 0."""
        scored = self.score(text, limit=max(1, limit))
        if not scored:
            if not self._entries:
                return MatchResult(None, 0.0, ())
            first = next(iter(self._entries))
            return MatchResult(first, 0.0, (Candidate(first, 0.0),))
        cands = tuple(Candidate(eid, conf) for eid, conf, _ in scored)
        return MatchResult(cands[0].id, cands[0].confidence, cands)

    def score(
        self, text: str, *, limit: int | None = None
    ) -> list[tuple[str, float, tuple[float, ...]]]:
        """Return the re-ranked candidates as (entry id, confidence, features), best
        first, at most `limit` of them (all re-ranked ones when None). Exposed for the
        benchmark and for fitting the constants; `match` is the API."""
        ranked = self._rank(text)
        if not ranked:
            return []
        feats = [f for _, _, f in ranked]
        scores = [s for _, s, _ in ranked]
        size = len(self._entries)
        out: list[tuple[str, float, tuple[float, ...]]] = []
        for i, (eid, _, f) in enumerate(ranked[:limit]):
            conf = _confidence(_calibration_x(feats, i, size, scores))
            # Never surer than the entry explains the message: "the return label link
            # gives a 404" shares the words of "return label" but is about a broken
            # link. Costs < 1 point of dev coverage at 95 % precision.
            out.append((eid, min(conf, _COVER_CAP * f[2]), f))
        return out

    def _rank(self, text: str) -> list[tuple[str, float, tuple[float, ...]]]:
        """Candidates as (entry id, ranking score, features), best first."""
        raw = terms(text)
        qterms = self._query_terms(raw)
        if not qterms:
            return []
        idf = self._idf
        weights = {t: idf(t) * c for t, c in qterms.items()}
        qmass = sum(weights.values())
        qnorm = math.sqrt(sum(w * w for w in weights.values()))
        acc: dict[str, float] = {}
        get = acc.get
        for t, w in weights.items():
            posting = self._postings.get(t)
            if posting is not None:
                for eid in posting:
                    acc[eid] = get(eid, 0.0) + w
        if not acc:
            return []
        if len(acc) == 1:
            # A lone candidate still needs a runner-up for its margin: take any other
            # entry (it shares no term, so only its fuzzy scores are non-zero).
            for eid in self._entries:
                if eid not in acc:
                    acc[eid] = 0.0
                    break
        nterms = min(len(weights), 8) / 8.0
        q = _Query(
            weights, qnorm, max(weights.values()), nterms, _WH.intersection(raw),
            frozenset(zip(raw, raw[1:])),
        )
        widf = self._widf
        q.wsq = {w: widf(w) ** 2 for w in set(words(text)) if w in self._word_df}
        q.wnorm = math.sqrt(sum(q.wsq.values())) or 1.0
        stage1: list[tuple[float, str, tuple[float, ...]]] = []
        for eid, overlap in heapq.nlargest(_POOL, acc.items(), key=_second):
            f = self._lexical(eid, overlap / qmass, q)
            stage1.append((_dot(RANK1_WEIGHTS, f), eid, f))
        stage1.sort(key=_first, reverse=True)
        qtermstr = " ".join(sorted(weights))
        qtext = fold(text)
        gidf = self._gidf
        gram_df = self._gram_df
        gsq = {g: gidf(g) ** 2 for g in _grams(qtext) if g in gram_df}
        gnorm = math.sqrt(sum(gsq.values())) or 1.0
        # Grams most entries share add little to a cosine and most of its cost.
        qgrams = frozenset(g for g, w in gsq.items() if w >= _MIN_GRAM_IDF2)
        ranked: list[tuple[str, float, tuple[float, ...]]] = []
        for _, eid, f in stage1[:_RERANK]:
            full = (
                f + self._words(eid, q) + self._fuzzy(eid, qtermstr, qtext)
                + self._chars(eid, gsq, qgrams, gnorm)
            )
            ranked.append((eid, _dot(RANK_WEIGHTS, full), full))
        ranked.sort(key=_second, reverse=True)
        return ranked

    def _lexical(self, eid: str, coverage: float, q: _Query) -> tuple[float, ...]:
        """Weighted-term features of one entry: best and second-best phrasing cosine,
        centroid cosine, the message's weight the entry covers, the best phrasing's
        weight the message covers, the message length class, the share of message
        terms the entry has, the heaviest message term it lacks (relative to the
        heaviest overall), question-word agreement, the best phrasing's share of the
        message's term bigrams and the best stop-word-keeping word cosine."""
        entry = self._entries[eid]
        if entry.stamp != self._version:
            self._refresh(entry)
        weights, qnorm = q.weights, q.norm
        best_cos = second_cos = phr_cover = 0.0
        wh_hits = bigram = 0.0
        qwh, qbig = q.wh, q.bigrams
        for p in entry.phrasings:
            if qwh:
                wh_hits += not qwh.isdisjoint(p.wh)
            else:
                wh_hits += not p.wh
            if qbig:
                b = len(qbig & p.bigrams)
                if b > bigram:
                    bigram = b
            if p.norm == 0.0:
                continue
            num = matched = 0.0
            ts = p.termset
            for t, qw in weights.items():
                if t in ts:
                    w = self._idf(t)
                    num += qw * w
                    matched += w
            cos = num / (qnorm * p.norm)
            if cos > best_cos:
                second_cos, best_cos = best_cos, cos
                phr_cover = matched / p.mass
            elif cos > second_cos:
                second_cos = cos
        num = 0.0
        tf = entry.tf
        missing = 0.0
        unmatched = 0
        for t, qw in weights.items():
            c = tf.get(t)
            if c is not None:
                num += qw * self._idf(t) * c
            else:
                unmatched += 1
                if qw > missing:
                    missing = qw
        centroid = num / (qnorm * entry.norm) if entry.norm > 0.0 else 0.0
        n = len(entry.phrasings) or 1
        return (
            best_cos, centroid, coverage, second_cos, phr_cover, q.nterms,
            1.0 - unmatched / len(weights), missing / q.top, wh_hits / n,
            bigram / len(qbig) if qbig else 0.0,
        )

    def _words(self, eid: str, q: _Query) -> tuple[float]:
        """The best IDF-weighted cosine of the message's surface words (stop words
        kept: "what is your name" has no other words) to one of the entry's phrasings."""
        wsq = q.wsq
        get = wsq.__getitem__
        best = 0.0
        for p in self._entries[eid].phrasings:
            if p.wnorm > 0.0:
                c = sum(map(get, p.words.intersection(wsq))) / p.wnorm
                if c > best:
                    best = c
        return (best / q.wnorm,)

    def _chars(
        self, eid: str, gsq: dict[str, float], qgrams: frozenset[str], gnorm: float
    ) -> tuple[float]:
        """Cosine of the message's character 3-5-grams (IDF-weighted, binary) to the
        entry's centroid (gram -> number of its phrasings that have it). Catches
        what terms miss: compounds (topup/top up), stems the stemmer does not unify,
        typos two edits away. (Per-phrasing gram cosines add little on dev for 5x
        the time.)"""
        entry = self._entries[eid]
        if entry.gcnorm == 0.0:
            return (0.0,)
        gtf = entry.gtf
        num = 0.0
        for g in qgrams & entry.gset:
            num += gsq[g] * gtf[g]
        return (num / (gnorm * entry.gcnorm),)

    def _fuzzy(self, eid: str, qtermstr: str, qtext: str) -> tuple[float, ...]:
        """rapidfuzz features of one entry: best token-set ratio on the normalised
        terms and best plain ratio on the folded text, over its phrasings."""
        entry = self._entries[eid]
        tsr = max(fuzz.token_set_ratio(qtermstr, p.termstr) for p in entry.phrasings)
        ratio = max(fuzz.ratio(qtext, p.text) for p in entry.phrasings)
        return (tsr / 100.0, ratio / 100.0)

    def _refresh(self, entry: _Entry) -> None:
        """Recompute an entry's cached norms under the current IDF (lazily, the first
        time the entry is scored after an edit anywhere in the FAQ)."""
        idf = self._idf
        for p in entry.phrasings:
            ws = [idf(t) for t in p.termset]
            p.norm = math.sqrt(sum(w * w for w in ws))
            p.mass = sum(ws)
        entry.norm = math.sqrt(sum((idf(t) * c) ** 2 for t, c in entry.tf.items()))
        widf, gidf = self._widf, self._gidf
        for p in entry.phrasings:
            p.wnorm = math.sqrt(sum(widf(w) ** 2 for w in p.words))
        entry.gcnorm = math.sqrt(sum((gidf(g) * c) ** 2 for g, c in entry.gtf.items()))
        entry.stamp = self._version

    def _widf(self, word: str) -> float:
        w = self._widf_cache.get(word)
        if w is None:
            df = self._word_df.get(word, 0)
            n = len(self._entries)
            w = self._widf_cache[word] = math.log(1.0 + (n - df + _IDF_HALF) / (df + _IDF_HALF))
        return w

    def _gidf(self, gram: str) -> float:
        w = self._gidf_cache.get(gram)
        if w is None:
            df = self._gram_df.get(gram, 0)
            n = len(self._entries)
            w = self._gidf_cache[gram] = math.log(1.0 + (n - df + _IDF_HALF) / (df + _IDF_HALF))
        return w

    def _idf(self, term: str) -> float:
        w = self._idf_cache.get(term)
        if w is None:
            posting = self._postings.get(term)
            df = len(posting) if posting is not None else 0
            n = len(self._entries)
            w = self._idf_cache[term] = math.log(1.0 + (n - df + _IDF_HALF) / (df + _IDF_HALF))
        return w

    def _query_terms(self, raw: list[str]) -> dict[str, float]:
        """Count the message's terms, replacing unknown ones by a known term one edit
        away when there is one (the most widespread such term wins)."""
        out: dict[str, float] = {}
        for t in raw:
            factor = 1.0
            if t not in self._postings:
                fixed = self._correct(t)
                if fixed is not None:
                    t, factor = fixed, _CORRECTED_WEIGHT
            out[t] = max(out.get(t, 0.0), factor)
        return out

    def _correct(self, term: str) -> str | None:
        key = _spelling_key(term)
        if len(key) < _MIN_CORRECT_LEN + (1 if is_hangul(term) else 0):
            return None
        found: set[str] = set()
        for v in _variants(term):
            bucket = self._neighbours.get(v)
            if bucket:
                found |= bucket
        found.discard(term)
        if not found:
            return None
        return max(found, key=lambda t: (len(self._postings[t]), t))


@dataclass
class _Query:
    """A message's query-side data shared by all candidates."""

    weights: dict[str, float]  # term -> IDF weight
    norm: float
    top: float  # the heaviest term's weight
    nterms: float  # message length class
    wh: frozenset[str]  # question words
    bigrams: frozenset[tuple[str, str]]
    wsq: dict[str, float] = field(default_factory=dict)  # known word -> word idf^2
    wnorm: float = 1.0


# Question words (as `terms` spells them): "how do I change" and "when do I change"
# ask different things, but their IDF is too low to tell.
_WH = frozenset({"what", "how", "when", "wher", "why", "who", "which"})


def _grams(folded: str) -> frozenset[str]:
    """Character 3- to 5-grams of a folded string padded with one space each side."""
    s = f" {folded} "
    n = len(s)
    return frozenset(s[i : i + k] for k in (3, 4, 5) for i in range(n - k + 1))


def _count(df: dict[str, int], keys: Iterable[str], delta: int) -> None:
    """Add `delta` to the entry frequency of every key, dropping zeros."""
    for k in keys:
        c = df.get(k, 0) + delta
        if c > 0:
            df[k] = c
        else:
            df.pop(k, None)


def _spelling_key(term: str) -> str:
    return jamo(term) if is_hangul(term) else term


def _variants(term: str) -> list[str]:
    """The term's spelling key and every string one deletion away from it: two terms
    within one edit (or one transposition) share at least one variant."""
    key = _spelling_key(term)
    if len(key) < _MIN_CORRECT_LEN:
        return []
    return [key] + [key[:i] + key[i + 1 :] for i in range(len(key))]


def _first(item: tuple[float, object, object]) -> float:
    return item[0]


def _second(item: tuple[str, float] | tuple[str, float, object]) -> float:
    return item[1]  # type: ignore[return-value]


def _dot(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum(map(operator.mul, a, b))


# Features whose lead over the best other candidate measures scorer agreement:
# best-phrasing cosine, centroid cosine, word cosine, token-set ratio, plain ratio,
# character-gram centroid cosine.
_AGREEMENT = (0, 1, 10, 11, 12, 13)


def _calibration_x(
    feats: list[tuple[float, ...]], i: int, size: int, scores: list[float] | None = None
) -> tuple[float, ...]:
    """The calibration inputs of candidate `i` among the ranked candidates' features
    `feats` in an FAQ of `size` entries: its ranking score, margin to the best other
    candidate, softmax share, lexical coverage, scorer agreement and the FAQ size."""
    if scores is None:
        scores = [_dot(RANK_WEIGHTS, f) for f in feats]
    s = scores[i]
    others = scores[:i] + scores[i + 1 :]
    # A one-entry FAQ has no runner-up to compare with.
    margin = s - max(others) if others else _LONE_MARGIN
    # The ranking score is the logit of a softmax over the candidates (that is how it
    # was fitted), so a candidate's share of the softmax mass is a first estimate of
    # its probability of being right; it falls as the runner-up gets close.
    top = max(scores)
    share = math.exp(s - top) / sum(math.exp(x - top) for x in scores)
    share = min(max(share, 1e-6), 1 - 1e-6)
    f = feats[i]
    cos, centroid, cov, _, phr_cover, nterms, matched, missing, wh, _, word_cos = f[:11]
    tsr, ratio, char_centroid = f[11:]
    rivals = feats[:i] + feats[i + 1 :]
    leads = tuple(f[j] - max([g[j] for g in rivals], default=0.0) for j in _AGREEMENT)
    # The FAQ's size enters the calibration: a runner-up far behind means little in a
    # 10-entry FAQ and a lot in a 1,000-entry one.
    logn = math.log(max(size, 2))
    logit_share = math.log(share / (1 - share))
    return (
        s, margin, logit_share, math.log(share), cov, math.log(max(cov, 1e-3)), cos,
        math.log(max(cos, 1e-3)), centroid, tsr, phr_cover, ratio, share * cov, nterms,
        math.log(nterms), logn, cov * logn, margin * logn, logit_share * logn, *leads,
        matched, missing, wh, word_cos, char_centroid,
        # What the entry leaves unexplained, more telling the smaller the FAQ: in a
        # 5-entry FAQ any message sharing a word has a huge margin over the rest.
        (1.0 - cov) / logn, missing / logn, (1.0 - matched) / logn,
    )


def calibration_features(
    scored: list[tuple[str, float, tuple[float, ...]]], size: int
) -> tuple[float, ...]:
    """The calibration inputs of the top entry of `Matcher.score`'s output for an FAQ
    of `size` entries (used by the benchmark to fit CONF_WEIGHTS)."""
    return _calibration_x([f for _, _, f in scored], 0, size)


def _confidence(x: tuple[float, ...]) -> float:
    z = CONF_BIAS + _dot(CONF_WEIGHTS, x)
    for row, b, w in zip(CONF_HIDDEN, CONF_HIDDEN_BIAS, CONF_OUT):
        z += w * math.tanh(b + _dot(row, x))
    return 1.0 / (1.0 + math.exp(-z)) if z > -30 else 0.0
