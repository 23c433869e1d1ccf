"""The optional semantic re-ranker (`faq.semantic`) against the default matcher, on
BANKING77 / CLINC150 under the faq-bench protocol v1 (same tasks, metrics and data
loaders as `bench.faq_bench`).

Run from the repo root (needs ``pip install .[semantic]``; without it this prints one
line and exits 0)::

    python -m bench.faq_semantic_bench            # the table, K=5 and K=10 tasks
    python -m bench.faq_semantic_bench --k5       # K=5 tasks only
    python -m bench.faq_semantic_bench --fit      # refit faq/semantic.py's constants
                                                  # on the dev splits and print them
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
# small FAQs teach the confidence not to trust a big margin alone.
_SUB_FAQS: tuple[tuple[int | None, int], ...] = (
    (None, 0), (5, 0), (5, 1), (10, 0), (25, 0), (-2, 0),
)


def _dev_rows(tasks: Sequence[Task], encoder: semantic.MiniLMEncoder) -> list[tuple[list[Any], float]]:
    """Per (task, sub-FAQ): rows of (candidate ids, features, gold, FAQ size), and the
    share of the fit that list gets (the full FAQs weigh as much as their sub-FAQs)."""
    out: list[tuple[list[Any], float]] = []
    for ti, task in enumerate(tasks):
        vecs = dict(zip([t for t, _ in task.dev], encoder.encode([t for t, _ in task.dev])))
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
            rows = []
            for text, gold in queries:
                cids, feats = m.candidates(text, vecs[text])
                rows.append((cids, feats, gold if gold in ids else None, len(docs)))
            out.append((rows, float(len(_SUB_FAQS) - 1) if size is None else 1.0))
            print(f"  {task.name} size {len(docs)}: {len(rows)} dev queries", file=sys.stderr)
    return out


def _weights(per_list: list[tuple[list[Any], float]]) -> list[tuple[Any, float]]:
    total = sum(share for items, share in per_list if items)
    return [(x, share / total / len(items)) for items, share in per_list if items for x in items]


def fit(tasks: Sequence[Task]) -> None:
    """Fit RANK_WEIGHTS, CONF_WEIGHTS/CONF_BIAS and RAW_THRESHOLD on the dev splits of
    `tasks` and print them for pasting into faq/semantic.py."""
    import numpy as np
    from scipy.optimize import minimize

    encoder = _encoder()
    per = _dev_rows(tasks, encoder)
    data = _weights(per)
    # Ranking: softmax over each query's candidates (conditional logit), in-scope
    # queries whose entry is among the candidates.
    rank = [(np.array(f), c.index(g), w) for (c, f, g, _), w in data if g in c]
    l2 = 1e-3

    def loss(wv: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.5 * l2 * wv @ wv, l2 * wv
        for X, gold, w in rank:
            z = X @ wv
            z = z - z.max()
            e = np.exp(z)
            p = e / e.sum()
            total -= w * (z[gold] - np.log(e.sum()))
            grad = grad + w * (p @ X - X[gold])
        return float(total), grad

    res = minimize(loss, np.array(semantic.RANK_WEIGHTS, float), jac=True, method="L-BFGS-B")
    semantic.RANK_WEIGHTS = tuple(float(x) for x in res.x)
    print("RANK_WEIGHTS: tuple[float, ...] =", tuple(round(x, 3) for x in semantic.RANK_WEIGHTS))
    # Confidence: logistic regression "is the top-1 right?" (out-of-scope: never).
    X, y, wt = [], [], []
    for (c, f, g, size), w in data:
        scores = [semantic._dot(semantic.RANK_WEIGHTS, x) for x in f]
        i = max(range(len(c)), key=scores.__getitem__)
        X.append(semantic.calibration_x(f, scores, i, size))
        y.append(1.0 if c[i] == g else 0.0)
        wt.append(w)
    Xa, ya, wa = np.array(X), np.array(y), np.array(wt)
    mu, sd = Xa.mean(0), Xa.std(0) + 1e-9
    Xs = (Xa - mu) / sd

    def lr_loss(wv: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.clip(Xs @ wv[:-1] + wv[-1], -30, 30)
        p = 1 / (1 + np.exp(-z))
        val = -(wa * (ya * np.log(p + 1e-12) + (1 - ya) * np.log(1 - p + 1e-12))).sum()
        d = (p - ya) * wa
        reg = 1e-4
        val += 0.5 * reg * wv[:-1] @ wv[:-1]
        return float(val), np.append(Xs.T @ d + reg * wv[:-1], d.sum())

    res = minimize(lr_loss, np.zeros(Xs.shape[1] + 1), jac=True, method="L-BFGS-B")
    wl = res.x[:-1] / sd
    bias = float(res.x[-1] - (res.x[:-1] * mu / sd).sum())
    semantic.CONF_WEIGHTS = tuple(float(x) for x in wl)
    semantic.CONF_BIAS = bias
    print("CONF_WEIGHTS: tuple[float, ...] =", tuple(round(x, 4) for x in semantic.CONF_WEIGHTS))
    print("CONF_BIAS: float =", round(bias, 4))
    # The raw confidence where the full dev FAQs, pooled with equal weight, reach 95 %.
    semantic.RAW_THRESHOLD = DEFAULT_THRESHOLD  # no shift while measuring raw values
    pooled: Preds = []
    cap = min(len(t.dev) for t in tasks)
    for task in tasks:
        m = semantic.SemanticMatcher(task.docs, encoder=encoder)
        preds = [
            (g is not None, g is not None and r.entry_id == g, r.confidence)
            for t, g in task.dev
            for r in [m.match_vector(t, encoder.encode([t])[0], limit=1)]
        ]
        b = best_threshold(preds, 0.95)
        print(f"  {task.name}: dev top1 {top1(preds):.3f} cov95 {b[1] if b else 0:.3f}",
              file=sys.stderr)
        pooled += random.Random(0).sample(preds, cap) if len(preds) > cap else preds
    b = best_threshold(pooled, 0.95)
    print("RAW_THRESHOLD: float =", round(b[0], 4) if b else None)


def main(argv: Sequence[str] = ()) -> int:
    args = list(argv)
    if not semantic.available():
        print("semantic extra not installed (pip install '.[semantic]'): skipping the "
              "semantic re-ranker benchmark")
        return 0
    if "--fit" in args:
        fit([t() for t in TASKS.values()])
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
