"""The optional semantic re-ranker (`faq.semantic`) against the default matcher, on
BANKING77 / CLINC150 under the faq-bench protocol v1 (same tasks, metrics and data
loaders as `bench.faq_bench`).

Run from the repo root (needs ``pip install .[semantic]``; without it this prints one
line and exits 0)::

    python -m bench.faq_semantic_bench            # the table, K=5 and K=10 tasks
    python -m bench.faq_semantic_bench --k5       # K=5 tasks only
    python -m bench.faq_semantic_bench --fit      # refit faq/semantic.py's constants
                                                  # on the dev splits and print them
    python -m bench.faq_semantic_bench --fit --cache=/tmp/sem_dev.npz
                                                  # the same, dev embeddings and token
                                                  # vectors kept on disk
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from bench.faq_bench import (
    TASKS,
    Preds,
    Task,
    _fit_conf_ensemble,
    _fit_conf_mlp,
    _fit_rank_mlp,
    _fold,
    best_threshold,
    cpu_name,
    metrics_row,
    percentile,
    predictions,
    run_task,
    sub_faq_queries,
    top1,
)
from faq import semantic
from faq.matcher import DEFAULT_THRESHOLD


def _encoder() -> semantic.MiniLMEncoder:
    import torch

    torch.set_num_threads(1)  # the protocol's one thread
    return semantic.MiniLMEncoder(threads=1)


def run_semantic(task: Task, encoder: semantic.MiniLMEncoder) -> dict[str, float]:
    """The faq-bench row of `task` for `SemanticMatcher`: one untimed pass over dev
    (the warm-up, and the dev predictions for transfer), then every test query timed
    one at a time, encoding included."""
    t0 = time.perf_counter()
    m = semantic.SemanticMatcher(task.docs, encoder=encoder)
    build_ms = (time.perf_counter() - t0) * 1000
    dev = predictions(m, task.dev)
    test: Preds = []
    times = []
    clock = time.perf_counter_ns
    for text, gold in task.test:
        t = clock()
        r = m.match(text, limit=1)
        times.append((clock() - t) / 1000.0)
        test.append((gold is not None, gold is not None and r.entry_id == gold, r.confidence))
    return metrics_row(dev, test, build_ms, statistics.median(times), percentile(times, 99))


def print_header() -> None:
    head = (
        f"{'task':<14}{'matcher':<10}{'top1':>6}{'cov@95':>8}{'cov@99':>8}{'tr95 P':>8}"
        f"{'tr95 C':>8}{'dflt P':>8}{'dflt C':>8}{'med ms':>8}{'p99 ms':>8}{'build s':>9}"
    )
    print(head)
    print("-" * len(head), flush=True)


def print_row(task: str, kind: str, r: dict[str, float]) -> None:
    print(
        f"{task:<14}{kind:<10}{r['top1']:>6.3f}{r['cov95']:>8.3f}{r['cov99']:>8.3f}"
        f"{r['tr95_p']:>8.3f}{r['tr95_c']:>8.3f}{r['def_p']:>8.3f}{r['def_c']:>8.3f}"
        f"{r['med_us'] / 1000:>8.2f}{r['p99_us'] / 1000:>8.2f}{r['build_ms'] / 1000:>9.2f}",
        flush=True,
    )


# --- offline fitting (dev splits only) ----------------------------------------------

# (size, draw) of the sub-FAQs fitted on besides each full FAQ (None): their left-out
# entries' dev queries become out-of-scope messages (CLINC150 dev has only 100), and
# small FAQs teach the confidence not to trust a big margin alone. Two more half-FAQ
# draws and two of 80 % of the entries per task were no better out of fold (weighted
# CLINC150 coverage@95 -0.02 to +0.02 with either confidence model), at twice the fit time.
_SUB_FAQS: tuple[tuple[int | None, int], ...] = (
    (None, 0), (5, 0), (5, 1), (10, 0), (25, 0), (-2, 0),
)


# One dev row: (candidate ids, their features, message features, gold entry or None
# when out of scope for that FAQ, FAQ size, dev half of the query text).
Row = tuple[list[str], list[tuple[float, ...]], tuple[float, ...], Any, int, int]


def _dev_rows(tasks: Sequence[Task], encoder: semantic.MiniLMEncoder) -> list[tuple[list[Row], float, int | None]]:
    """Per (task, sub-FAQ): its rows, the share of the fit that list gets (the full
    FAQs weigh as much as their sub-FAQs), and the task's index for a full FAQ (None
    for a sub-FAQ)."""
    out: list[tuple[list[Row], float, int | None]] = []
    for ti, task in enumerate(tasks):
        vecs = dict(zip([t for t, _ in task.dev], encoder.encode([t for t, _ in task.dev])))
        encoder.encode_tokens([t for t, _ in task.dev])  # batched now, cached for `candidates`
        for size, draw in _SUB_FAQS:
            if size is None:
                docs = task.docs
            else:
                n = len(task.docs) // 2 if size == -2 else size
                docs = random.Random(f"{ti}:{n}:{draw}").sample(task.docs, n)
            ids = {d.id for d in docs}
            m = semantic.SemanticMatcher(docs, encoder=encoder)
            queries = (task.dev if size is None
                       else sub_faq_queries(task, ids, f"{ti}:{size}:{draw}:oos"))
            rows: list[Row] = []
            for text, gold in queries:
                cids, feats, ctx = m.candidates(text, vecs[text])
                rows.append((cids, feats, ctx, gold if gold in ids else None, len(docs), _fold(text)))
            out.append((rows, float(len(_SUB_FAQS) - 1) if size is None else 1.0,
                        ti if size is None else None))
            print(f"  {task.name} size {len(docs)}: {len(rows)} dev queries", file=sys.stderr)
    return out


def _weights(per_list: Sequence[tuple[list[Row], float, Any]]) -> list[tuple[Row, float]]:
    """Every row with its weight: each list counts by its share, not by its length."""
    total = sum(share for items, share, _ in per_list if items)
    return [(x, share / total / len(items)) for items, share, _ in per_list if items for x in items]


RankModel = tuple[tuple[float, ...], tuple[tuple[float, ...], ...], tuple[float, ...], tuple[float, ...]]


def fit_rank(data: Sequence[tuple[Row, float]]) -> RankModel:
    """RANK_WEIGHTS, RANK_HIDDEN, RANK_HIDDEN_BIAS, RANK_OUT: softmax over each query's
    candidates (conditional logit) with a 4-unit tanh hidden layer
    (`bench.faq_bench._fit_rank_mlp`), on the in-scope queries whose entry is among
    the candidates."""
    rank = [(f, c.index(g), w) for (c, f, _, g, _, _), w in data if g in c]
    wl, hidden, hbias, out = _fit_rank_mlp(rank, hidden=4, l2=1e-2)
    return tuple(float(x) for x in wl), hidden, hbias, out


def conf_rows(data: Sequence[tuple[Row, float]]) -> list[tuple[tuple[float, ...], int, float]]:
    """(calibration inputs of the top-1 under the current ranking, is it right,
    weight) per dev row."""
    out = []
    for (c, f, ctx, g, size, _), w in data:
        scores = [semantic.rank_score(x) for x in f]
        i = max(range(len(c)), key=scores.__getitem__)
        out.append((semantic.calibration_x(f, scores, i, size, ctx), int(c[i] == g), w))
    return out


ConfModel = tuple[tuple[float, ...], float, tuple[tuple[float, ...], ...], tuple[float, ...], tuple[float, ...]]


def fit_conf(data: list[tuple[tuple[float, ...], int, float]]) -> ConfModel:
    """CONF_WEIGHTS, CONF_BIAS, CONF_HIDDEN, CONF_HIDDEN_BIAS, CONF_OUT: the mean logit
    of a weighted logistic regression "is the top-1 right?" (out of scope: never) and
    of `bench.faq_bench._fit_conf_ensemble` (five tanh-layer models from seeds 5-9),
    both on standardised inputs. Out of fold on dev, with CLINC150's 100 out-of-scope
    queries weighted to test's 18 % (coverage@95 BANKING77-k5 / k10 / CLINC150-k5 /
    k10): linear alone 0.703 / 0.801 / 0.453 / 0.662, ensemble alone 0.682 / 0.777 /
    0.498 / 0.697, this mean 0.684 / 0.800 / 0.508 / 0.683. The ensemble alone also let
    some out-of-scope queries reach 99 % (CLINC150-k10 weighted coverage@99 0.13 vs
    0.35 linear, 0.23 the mean): it learns those few queries by heart, the linear half
    keeps it honest."""
    lin, _, _, _ = _fit_conf_mlp(data, hidden=0, l2=1e-3, steps=1500, lr=0.05)
    ens, hidden, hidden_bias, out = _fit_conf_ensemble(data)
    mean = [(a + b) / 2 for a, b in zip(lin, ens)]
    return (tuple(mean[:-1]), mean[-1], hidden, hidden_bias, tuple(o / 2 for o in out))


def _set_conf(model: ConfModel) -> None:
    (semantic.CONF_WEIGHTS, semantic.CONF_BIAS, semantic.CONF_HIDDEN,
     semantic.CONF_HIDDEN_BIAS, semantic.CONF_OUT) = model


def _set_rank(rank: RankModel) -> None:
    (semantic.RANK_WEIGHTS, semantic.RANK_HIDDEN, semantic.RANK_HIDDEN_BIAS,
     semantic.RANK_OUT) = rank


def _row_preds(rows: Sequence[Row]) -> Preds:
    """(in scope, right, raw confidence) of rows under the current constants."""
    out: Preds = []
    for c, f, ctx, g, size, _ in rows:
        scores = [semantic.rank_score(x) for x in f]
        i = max(range(len(c)), key=scores.__getitem__)
        conf = semantic._sigmoid(semantic.confidence_logit(
            semantic.calibration_x(f, scores, i, size, ctx)))
        out.append((g is not None, c[i] == g, conf))
    return out


def out_of_fold(per: Sequence[tuple[list[Row], float, int | None]], ntasks: int) -> list[Preds]:
    """Per task, the full dev FAQ's predictions where each half of the dev queries
    (by a hash of the text) is scored by constants fitted without it."""
    pooled: list[Preds] = [[] for _ in range(ntasks)]
    for fold in (0, 1):
        part = [([r for r in rows if r[5] != fold], share, ti) for rows, share, ti in per]
        data = _weights(part)
        _set_rank(fit_rank(data))
        _set_conf(fit_conf(conf_rows(data)))
        for rows, _, ti in per:
            if ti is not None:
                pooled[ti] += _row_preds([r for r in rows if r[5] == fold])
    return pooled


# Out-of-scope share of CLINC150 test (1,000 of 5,500 queries); its dev has 100 of
# 3,100, so dev coverage there says little about test's out-of-scope queries.
_OOS_SHARE = 1000 / 5500


def weighted_coverage(preds: Preds, p: float) -> float:
    """Coverage at precision >= `p` (oracle threshold, ties answered together) with the
    out-of-scope queries of `preds` weighted up to `_OOS_SHARE` of all queries: the
    dev stand-in for CLINC150 test when choosing between models."""
    import numpy as np

    conf = np.array([c for _, _, c in preds])
    inside = np.array([i for i, _, _ in preds], float)
    right = np.array([r for _, r, _ in preds], float)
    n_in, n_out = inside.sum(), len(preds) - inside.sum()
    w = np.where(inside > 0, 1.0, _OOS_SHARE / (1 - _OOS_SHARE) * n_in / max(n_out, 1))
    order = np.argsort(-conf, kind="stable")
    conf, inside, right, w = conf[order], inside[order], right[order], w[order]
    precision = np.cumsum(right * w) / np.cumsum(w)
    coverage = np.cumsum(inside) / max(n_in, 1)
    ok = np.r_[conf[1:] != conf[:-1], True] & (precision >= p)
    return float(coverage[ok].max()) if ok.any() else 0.0


def load_cache(encoder: semantic.MiniLMEncoder, path: str) -> bool:
    """Fill `encoder`'s caches from `path` (written by `save_cache`); whether it held
    both sentence and token vectors."""
    import numpy as np

    if not os.path.exists(path):
        return False
    z = np.load(path, allow_pickle=True)
    encoder._cache.update(zip(z["texts"].tolist(), z["vecs"]))
    if "tok_texts" not in z:
        return False
    ends = np.cumsum(z["tok_lens"])
    flat = z["tok_flat"]
    encoder._tok_cache.update(
        (t, flat[e - n:e]) for t, n, e in zip(z["tok_texts"].tolist(), z["tok_lens"], ends))
    return True


def save_cache(encoder: semantic.MiniLMEncoder, path: str) -> None:
    """Write `encoder`'s sentence and token vectors to the .npz file `path`."""
    import numpy as np

    texts = list(encoder._cache)
    toks = list(encoder._tok_cache)
    np.savez(path, texts=np.array(texts, dtype=object),
             vecs=np.stack([encoder._cache[t] for t in texts]),
             tok_texts=np.array(toks, dtype=object),
             tok_lens=np.array([len(encoder._tok_cache[t]) for t in toks]),
             tok_flat=np.concatenate([encoder._tok_cache[t] for t in toks]))


def fit(tasks: Sequence[Task], *, cache: str | None = None) -> None:
    """Fit the RANK_* and CONF_* constants and RAW_THRESHOLD on the dev splits of
    `tasks` (never their test splits) and print them for pasting into
    faq/semantic.py, with out-of-fold dev numbers per task (for CLINC150 also with
    its out-of-scope queries weighted to test's share). Deterministic: fixed sub-FAQ
    draws and seeds, so the same dev data and matcher give the same constants.
    `cache`: an .npz file of the phrasings' and dev queries' embeddings and token
    vectors, read if it exists and holds both, else written (a refit after a feature
    change then encodes nothing). A cache written before the encoder changed holds
    vectors that differ in the last bits, enough to move the tanh units' constants
    by a few hundredths: delete it then."""
    encoder = _encoder()
    fresh = load_cache(encoder, cache) if cache else False
    per = _dev_rows(tasks, encoder)
    if cache and not fresh:
        save_cache(encoder, cache)
    # The threshold and the reported dev numbers come from out-of-fold confidences:
    # the in-sample ones of a model fitted on these very queries are too kind.
    semantic.RAW_THRESHOLD = DEFAULT_THRESHOLD  # no shift while measuring raw values
    pooled = out_of_fold(per, len(tasks))
    for task, preds in zip(tasks, pooled):
        b95, b99 = best_threshold(preds, 0.95), best_threshold(preds, 0.99)
        oos = sum(1 for inside, _, _ in preds if not inside)
        weighted = (f"; out-of-scope weighted to {_OOS_SHARE:.0%}: cov95 "
                    f"{weighted_coverage(preds, 0.95):.3f} cov99 "
                    f"{weighted_coverage(preds, 0.99):.3f}") if oos else ""
        print(f"  {task.name}: out-of-fold dev top1 {top1(preds):.3f} "
              f"cov95 {b95[1] if b95 else 0:.3f} cov99 {b99[1] if b99 else 0:.3f}{weighted}",
              file=sys.stderr)
    cap = min(len(p) for p in pooled)
    balanced = [x for p in pooled for x in (random.Random(2).sample(p, cap) if len(p) > cap else p)]
    b = best_threshold(balanced, 0.95)
    data = _weights(per)
    rank = fit_rank(data)
    _set_rank(rank)
    model = fit_conf(conf_rows(data))
    _set_conf(model)
    _print_rows("RANK_HIDDEN", rank[1])
    print("RANK_HIDDEN_BIAS: tuple[float, ...] =", tuple(round(float(x), 4) for x in rank[2]))
    print("RANK_OUT: tuple[float, ...] =", tuple(round(float(x), 4) for x in rank[3]))
    print("RANK_WEIGHTS: tuple[float, ...] =", tuple(round(x, 4) for x in rank[0]))
    print("CONF_WEIGHTS: tuple[float, ...] =", tuple(round(float(x), 4) for x in model[0]))
    print("CONF_BIAS: float =", round(float(model[1]), 4))
    _print_rows("CONF_HIDDEN", model[2])
    print("CONF_HIDDEN_BIAS: tuple[float, ...] =", tuple(round(float(x), 4) for x in model[3]))
    print("CONF_OUT: tuple[float, ...] =", tuple(round(float(x), 4) for x in model[4]))
    print("RAW_THRESHOLD: float =", round(b[0], 4) if b else None)


def _print_rows(name: str, rows: Any) -> None:
    """A fitted matrix as the Python constant faq/semantic.py holds (paste it there)."""
    print(f"{name}: tuple[tuple[float, ...], ...] = (")
    for row in rows:
        print("    ", tuple(round(float(x), 4) for x in row), ",", sep="")
    print(")")


def main(argv: Sequence[str] = ()) -> int:
    args = list(argv)
    if not semantic.available():
        print("semantic extra not installed (pip install '.[semantic]'): skipping the "
              "semantic re-ranker benchmark")
        return 0
    if "--fit" in args:
        cache = next((a.split("=", 1)[1] for a in args if a.startswith("--cache=")), None)
        fit([t() for t in TASKS.values()], cache=cache)
        return 0
    names = [a for a in args if not a.startswith("--")] or (
        ["banking77-k5", "clinc150-k5"] if "--k5" in args else list(TASKS)
    )
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores; one thread used)")
    print(f"Python {platform.python_version()}; confidence threshold for dflt columns "
          f"{DEFAULT_THRESHOLD}; latency per match call after warm-up, encoding included")
    print("top1 = top-1 accuracy on in-scope test queries; cov@P = oracle coverage at "
          "precision >= P;\ntr95 = test precision/coverage at the dev threshold for P=0.95; "
          "dflt = at the threshold above\n")
    encoder = _encoder()
    print_header()
    for name in names:
        task = TASKS[name]()
        print_row(name, "default", run_task(task))
        print_row(name, "semantic", run_semantic(task, encoder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
