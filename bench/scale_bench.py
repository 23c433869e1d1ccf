"""Scale benchmark (issue 7): the product against a bare-stack reference, side by side.

    python -m bench.scale_bench            # the full run (about 4.5 minutes on 2 cores; also `make bench`)
    python -m bench.scale_bench --quick    # smaller and shorter (about 2 minutes)

Servers run as subprocesses: the product (`python -m inbox.cli serve`) on a temporary
SQLite file, then with `--workers 2` on PostgreSQL (database `bench`, recreated) + Redis,
and the reference (`bench/reference_app.py`: Starlette + Twilio's validator + one raw
`aiosqlite` insert + fan-out). The load generator (`bench/loadgen.py`) is its own
process: it signs each webhook with the real `twilio` validator and times each message
from just before its POST to its arrival on every active agent socket.

Scenarios:
  A  throughput, 1 worker, SQLite, 1 and 50 agents: product / reference (target >= 0.5),
     the two taking turns for 3 rounds (--quick: 2); the median round is reported
  B  latency to 50 agents at a paced 100 msg/s (target p50 < 10 ms, p99 < 50 ms)
  C  2 workers, PostgreSQL + Redis: throughput, latency at 100 msg/s, nothing lost
  D  5,000 idle agent sockets watching "assigned to me" (which new messages are not) plus
     50 active agents watching open conversations at 100 msg/s: latency of the active
     ones, lost messages, server RSS per idle socket (--quick: 1,000 idle)
  E  100k conversations / 1M messages (SQLite): list, keyset page, messages, search (a
     rare word, a common word, 2 characters), contact search, and the FAQ editor's
     unanswered-question groups over 20,000 open questions (--quick: 20k / 200k / 5,000)
Every load run reports lost messages (acknowledged by 200, never seen by an agent).

Settings: BENCH_PG_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/bench),
BENCH_REDIS_URL (default: a private redis-server on a free port when the binary exists,
since Redis pub/sub channels are shared by every database number; else
redis://127.0.0.1:6379/14).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
TWILIO_TOKEN = "bench-twilio-auth-token"
ACCOUNT_SID = "AC" + "b" * 32
SECRET = "bench-secret-key-" + "x" * 32
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/bench")
REF_TOKEN = "reference-agent-token"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    """Direct children of `pid` (uvicorn's worker processes)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    token: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def wait_healthy(server: Server, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(server.base + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    tail = server.log.read_text(errors="replace")[-2000:] if server.log.exists() else ""
    server.stop()
    raise RuntimeError(f"{server.name} did not start:\n{tail}")


def raised_nofile() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def product_env(db_url: str, port: int, redis_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INBOX_", "TWILIO_", "WHATSAPP_"))}
    env.update(INBOX_DATABASE_URL=db_url, INBOX_SECRET_KEY=SECRET,
               TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
               TWILIO_FROM="+15550009999", INBOX_PUBLIC_URL=f"http://127.0.0.1:{port}",
               # Nothing leaves the machine: an outbound reply would go to a closed port.
               TWILIO_API_BASE="http://127.0.0.1:9", PYTHONUNBUFFERED="1",
               # The load generator posts from 16 source addresses, over 100/s each at
               # full load (Twilio spreads a shop's traffic over its pool of addresses):
               # the per-source limit would measure itself (429s), not the product. It
               # still runs for every request.
               INBOX_WEBHOOK_RATE="100000", INBOX_WEBHOOK_BURST="100000")
    if redis_url:
        env["INBOX_REDIS_URL"] = redis_url
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    done = subprocess.run([PY, "-m", "inbox.cli", *args], env=env, cwd=REPO, capture_output=True,
                          timeout=timeout, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"inbox {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def start_product(name: str, tmp: Path, db_url: str, *, workers: int = 1,
                  redis_url: str | None = None) -> Server:
    port = free_port()
    env = product_env(db_url, port, redis_url)
    if not db_url.startswith("sqlite"):
        cli(env, "db", "upgrade")
    token = cli(env, "agents", "create", "--email", f"bench-{port}@bench.example", "--name",
                "Bench Agent", "--role", "agent").strip().splitlines()[-1]
    log = tmp / f"{name}.log"
    proc = subprocess.Popen([PY, "-m", "inbox.cli", "serve", "--port", str(port), "--workers",
                             str(workers), "--log-level", "warning"], env=env, cwd=REPO,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=raised_nofile)
    server = Server(name, proc, port, log, token)
    wait_healthy(server)
    return server


def start_reference(tmp: Path) -> Server:
    port = free_port()
    env = dict(os.environ, REF_DB=str(tmp / "reference.db"), REF_TOKEN=REF_TOKEN,
               TWILIO_AUTH_TOKEN=TWILIO_TOKEN, INBOX_PUBLIC_URL=f"http://127.0.0.1:{port}")
    log = tmp / "reference.log"
    proc = subprocess.Popen([PY, "-m", "bench.reference_app", "--port", str(port)], env=env,
                            cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=raised_nofile)
    server = Server("reference", proc, port, log, REF_TOKEN)
    wait_healthy(server)
    return server


class Ids:
    """Message numbers unique per server (each run of the load generator takes a block)."""

    def __init__(self) -> None:
        self.next = 1

    def block(self) -> int:
        first = self.next
        self.next += 1_000_000
        return first


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def wait_idle(server: Server, limit: float = 30.0) -> float:
    """Wait until the server's processes use under 10% CPU (background work from the last
    run, e.g. FAQ responders, finished), at most `limit` seconds; returns the wait."""
    t0 = time.monotonic()
    pids = server.pids()
    last = cpu_seconds(pids)
    while time.monotonic() - t0 < limit:
        time.sleep(0.5)
        now = cpu_seconds(pids)
        if now - last < 0.05:
            break
        last = now
    return time.monotonic() - t0


def loadgen(server: Server, ids: Ids, *, agents: int, mode: str, duration: float,
            rate: float = 100.0, conns: int = 16, idle: int = 0, grace: float = 10.0,
            idle_path: str = "/ws/agent", warmup: int = 20, timeout: float = 300,
            watch: dict[str, Any] | None = None,
            idle_watch: dict[str, Any] | None = None, first: int | None = None) -> dict[str, Any]:
    # `first`: the first message number; a block's customers are the same 200 whatever
    # the number within it (see bench.loadgen.Messages), so a later start in a block that
    # ran already sends follow-ups only.
    args = [PY, "-m", "bench.loadgen", "--base", server.base, "--agent-token", server.token,
            "--twilio-token", TWILIO_TOKEN, "--account-sid", ACCOUNT_SID, "--agents", str(agents),
            "--mode", mode, "--duration", str(duration), "--rate", str(rate), "--conns", str(conns),
            "--idle", str(idle), "--first", str(ids.block() if first is None else first),
            "--grace", str(grace),
            "--idle-path", idle_path, "--warmup", str(warmup),
            "--server-pids", ",".join(str(p) for p in server.pids())]
    if watch is not None:
        args += ["--watch", json.dumps(watch)]
    if idle_watch is not None:
        args += ["--idle-watch", json.dumps(idle_watch)]
    wait_idle(server)
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=raised_nofile)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"loadgen failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------- the table


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.notes: list[str] = []

    def add(self, scenario: str, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("pass" if ok else "FAIL")
        self.rows.append((scenario, metric, value, target, verdict))
        print(f"  {scenario:<34} {metric:<34} {value:>14}  {target:<10} {verdict}", flush=True)

    def lost(self, scenario: str, r: dict[str, Any], grace: float = 10.0) -> None:
        self.add(scenario, f"lost (acked, unseen after {grace:.0f} s)",
                 f"{r['lost_messages']} of {r['acked']}", "0", r["lost_messages"] == 0)
        if r["lost_messages"] and r.get("not_live_in_log", -1) >= 0:
            self.add(scenario, "  of which in the log (?since= replay)",
                     f"{r['not_live_in_log']}")

    def render(self) -> str:
        head = ("scenario", "metric", "value", "target", "")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(5)]
        line = "  ".join("-" * w for w in widths)
        out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), line]
        for row in self.rows:
            out.append("  ".join((c.rjust(w) if i == 2 else c.ljust(w))
                                 for i, (c, w) in enumerate(zip(row, widths))))
        return "\n".join(out)


def ms(x: float) -> str:
    return f"{x:.1f} ms" if x == x else "n/a"


def latency_rows(t: Table, scenario: str, r: dict[str, Any]) -> None:
    t.add(scenario, "latency to agents p50", ms(r["lat_p50_ms"]), "< 10 ms", r["lat_p50_ms"] < 10)
    t.add(scenario, "latency to agents p99", ms(r["lat_p99_ms"]), "< 50 ms", r["lat_p99_ms"] < 50)
    t.add(scenario, "webhook answer p50 / p99", f"{r['ack_p50_ms']:.1f} / {r['ack_p99_ms']:.1f} ms")
    t.add(scenario, "sent at / accepted", f"{r['rate']:.0f} / {r['throughput']:.0f} msg/s")


def not_200(r: dict[str, Any]) -> str:
    bad = {k: v for k, v in r["statuses"].items() if k != "200"}
    return ", ".join(f"{v}x{k}" for k, v in bad.items()) + (f", {r['errors']} errors" if r["errors"] else "")


# ---------------------------------------------------------------------------- scenarios


def _merged(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The lost-message counts of several runs as one run's (for `Table.lost`)."""
    return {"lost_messages": sum(r["lost_messages"] for r in runs),
            "acked": sum(r["acked"] for r in runs)}


def _median(runs: Sequence[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def scenario_throughput(t: Table, tmp: Path, cfg: argparse.Namespace) -> None:
    # Both servers run side by side and take turns, round by round (reference, product,
    # reference, product, ...): on a machine whose speed drifts from minute to minute
    # (a shared VM), each ratio compares runs seconds apart, and the table reports the
    # median round. A product round after the first sends the same 200 customers again:
    # follow-ups only (no new contact, no FAQ hand-over), the steady state of a shop
    # whose customers write more than once.
    ref = start_reference(tmp)
    try:
        prod = start_product("product-sqlite", tmp, f"sqlite+aiosqlite:///{tmp / 'product.db'}")
    except BaseException:
        ref.stop()
        raise
    rounds: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    try:
        ref_ids, prod_ids = Ids(), Ids()
        for agents in (1, 50):
            block = prod_ids.block()
            rounds[agents] = []
            for i in range(cfg.rounds):
                r = loadgen(ref, ref_ids, agents=agents, mode="closed", duration=cfg.duration,
                            conns=cfg.conns)
                p = loadgen(prod, prod_ids, agents=agents, mode="closed", duration=cfg.duration,
                            conns=cfg.conns, first=block + i * 100_000)
                rounds[agents].append((r, p))
        ref_paced = loadgen(ref, ref_ids, agents=50, mode="paced", rate=100,
                            duration=cfg.paced_duration)
        prod_paced = loadgen(prod, prod_ids, agents=50, mode="paced", rate=100,
                             duration=cfg.paced_duration)
    finally:
        prod.stop()
        ref.stop()
    for agents in (1, 50):
        pairs = rounds[agents]
        refs, prods = [r for r, _ in pairs], [p for _, p in pairs]
        ratios = [p["throughput"] / r["throughput"] for r, p in pairs]
        again = [p["throughput"] / r["throughput"] for r, p in pairs[1:]]
        ratio = statistics.median(ratios)
        sc = f"A 1 worker SQLite, {agents} agent{'s' if agents > 1 else ''}"
        t.add(sc, f"accepted webhooks/s product (median of {len(pairs)})",
              f"{_median(prods, 'throughput'):.0f}/s")
        t.add(sc, "accepted webhooks/s reference", f"{_median(refs, 'throughput'):.0f}/s")
        t.add(sc, "ratio product / reference, median round", f"{ratio:.3f}", ">= 0.5", ratio >= 0.5)
        t.add(sc, "  each round (the first: new customers)", " ".join(f"{x:.2f}" for x in ratios))
        t.add(sc, "server CPU per message prod / ref",
              f"{_median(prods, 'server_cpu_ms_per_msg'):.2f} / "
              f"{_median(refs, 'server_cpu_ms_per_msg'):.2f} ms")
        first = prods[0]
        share = first.get("first_messages", 0) / max(1, first["acked_measured"])
        t.add(sc, "  first round: new customers' first messages", f"{100 * share:.0f}%")
        if again:
            middle = statistics.median(again)
            t.add(sc, "returning customers: ratio, median round", f"{middle:.3f}", ">= 0.5",
                  middle >= 0.5)
        t.add(sc, "latency p50 / p99 under full load",
              f"{_median(prods, 'lat_p50_ms'):.0f} / {_median(prods, 'lat_p99_ms'):.0f} ms")
        odd = "; ".join(x for x in (not_200(p) for p in prods) if x)
        if odd:
            t.add(sc, "product answers other than 200", odd)
        t.lost(sc + " (product)", _merged(prods))
        t.lost(sc + " (reference)", _merged(refs))
    sc = "B 50 agents, paced 100 msg/s"
    latency_rows(t, sc + " (product)", prod_paced)
    t.lost(sc + " (product)", prod_paced)
    t.add(sc + " (reference)", "latency p50 / p99",
          f"{ref_paced['lat_p50_ms']:.1f} / {ref_paced['lat_p99_ms']:.1f} ms")
    t.lost(sc + " (reference)", ref_paced)


def private_redis(tmp: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    url = os.environ.get("BENCH_REDIS_URL")
    if url:
        return url, None
    binary = shutil.which("redis-server")
    if binary is None:
        return "redis://127.0.0.1:6379/14", None
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)],
                            stdout=(tmp / "redis.log").open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return f"redis://127.0.0.1:{port}/14", proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    return "redis://127.0.0.1:6379/14", None


def reset_pg() -> None:
    import asyncio

    import asyncpg

    dsn = PG_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def reset() -> None:
        try:
            con = await asyncpg.connect(dsn, timeout=10)
        except asyncpg.InvalidCatalogNameError:  # a fresh server: create the database
            base, name = dsn.rsplit("/", 1)
            admin = await asyncpg.connect(f"{base}/postgres", timeout=10)
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()
            con = await asyncpg.connect(dsn, timeout=10)
        try:
            await con.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await con.close()

    asyncio.run(reset())


def scenario_two_workers(t: Table, tmp: Path, cfg: argparse.Namespace) -> None:
    sc = "C 2 workers, PostgreSQL + Redis"
    try:
        reset_pg()
    except Exception as exc:  # no PostgreSQL: say so in the table, run the rest
        t.add(sc, "skipped", f"no PostgreSQL ({type(exc).__name__})")
        return
    redis_url, redis_proc = private_redis(tmp)
    try:
        prod = start_product("product-pg", tmp, PG_URL, workers=2, redis_url=redis_url)
        try:
            ids = Ids()
            thr = loadgen(prod, ids, agents=50, mode="closed", duration=cfg.duration, conns=cfg.conns)
            paced = loadgen(prod, ids, agents=50, mode="paced", rate=100, duration=cfg.paced_duration)
        finally:
            prod.stop()
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(5)
    t.add(sc, "accepted webhooks/s, 50 agents", f"{thr['throughput']:.0f}/s")
    t.add(sc, "server CPU per message (all workers)", f"{thr['server_cpu_ms_per_msg']:.2f} ms")
    t.add(sc, "latency p50 / p99 under full load", f"{thr['lat_p50_ms']:.0f} / {thr['lat_p99_ms']:.0f} ms")
    if not_200(thr):
        t.add(sc, "answers other than 200", not_200(thr))
    t.lost(sc + ", full load", thr)
    latency_rows(t, sc + ", 100 msg/s", paced)
    t.lost(sc + ", 100 msg/s", paced)
    if paced["reconnects"] or thr["reconnects"]:
        t.add(sc, "agent resyncs (reconnect + since)", str(paced["reconnects"] + thr["reconnects"]))


# Scenario D's watches: the idle agents show "assigned to me", which inbound messages (new,
# unassigned) never are; the active ones show every open conversation.
IDLE_WATCH = {"view": {"assignee": "me"}, "conversation_id": None}
ACTIVE_WATCH = {"view": {"status": "open"}, "conversation_id": None}


def scenario_idle(t: Table, tmp: Path, cfg: argparse.Namespace) -> None:
    """Issue 7's benchmark: N connected idle agents plus 50 active ones at 100 msg/s.

    Every idle agent socket sends a watch frame for "assigned to me"; the 50 active ones
    watch open conversations. Routing offers each event only to the sockets listed under
    its topics, so the idle ones cost memory, not CPU per event. One server run measures
    both: RSS per idle socket (before the active agents connect) and the active agents'
    latency. The reference (every socket gets every event) is measured for memory only:
    at N = 5,000 its fan-out is beyond 2 cores."""
    n = cfg.idle
    ref = start_reference(tmp)
    try:
        ref_mem = loadgen(ref, Ids(), agents=1, mode="paced", rate=1, duration=1, idle=n,
                          warmup=0, grace=5, timeout=600)
    finally:
        ref.stop()
    # A fresh server: memory freed by closed sockets stays in the process and would hide
    # this run's growth.
    prod = start_product("product-idle", tmp, f"sqlite+aiosqlite:///{tmp / 'idle.db'}")
    try:
        r = loadgen(prod, Ids(), agents=50, mode="paced", rate=100, duration=cfg.idle_duration,
                    idle=n, grace=cfg.idle_grace, timeout=900, watch=ACTIVE_WATCH,
                    idle_watch=IDLE_WATCH)
    finally:
        prod.stop()
    for name, m in (("product", r), ("reference", ref_mem)):
        sc = f"D {n} idle agent sockets ({name})"
        t.add(sc, "connected", f"{m.get('idle_connected', 0)} in {m.get('idle_connect_s', 0):.0f} s")
        t.add(sc, "server RSS per idle socket", f"{m.get('kib_per_idle', float('nan')):.1f} KiB")
        t.add(sc, "server RSS before / after", f"{m['rss_before_kib'] / 1024:.0f} / "
              f"{m['rss_after_kib'] / 1024:.0f} MiB")
    sc = f"D {n} idle + 50 active agents, 100/s"
    latency_rows(t, sc, r)
    t.lost(sc, r)
    t.add(sc, "events to idle sockets during the run", str(r.get("idle_events_run", 0)), "0",
          r.get("idle_events_run", 0) == 0)
    t.add(sc, "heartbeats to idle sockets", str(r.get("idle_frames_run", 0) - r.get("idle_events_run", 0)))
    t.add(sc, "idle sockets dropped", str(r.get("idle_dropped", 0)), "0", r.get("idle_dropped", 0) == 0)
    t.add(sc, "server CPU per message", f"{r.get('server_cpu_ms_per_msg', float('nan')):.1f} ms")
    if r["reconnects"]:
        t.add(sc, "active agent resyncs (reconnect + since)", str(r["reconnects"]))


def _time_get(url: str, token: str, n: int) -> tuple[float, float, int]:
    times = []
    status = 0
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    for _ in range(n + 2):
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
            status = resp.status
        times.append((time.perf_counter() - t0) * 1000)
    times = sorted(times[2:])  # two warm-up calls
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    return statistics.median(times), p99, status


def scenario_big(t: Table, tmp: Path, cfg: argparse.Namespace) -> None:
    from bench.seed_big import keyset_cursor, seed

    path = tmp / "big.db"
    info = seed(str(path), conversations=cfg.big_conversations, messages=cfg.big_messages,
                unanswered=cfg.big_unanswered)
    sc = f"E {cfg.big_conversations // 1000}k conv / {cfg.big_messages // 1000}k msgs"
    t.add(sc, "seed time (executemany)", f"{info['seconds']:.0f} s", "< 120 s", info["seconds"] < 120)
    t.add(sc, "  of which search index build", f"{info['search_index_s']:.0f} s")
    prod = start_product("product-big", tmp, f"sqlite+aiosqlite:///{path}")
    try:
        cursor, _ = keyset_cursor(str(path), cfg.big_conversations // 2)
        mid = cfg.big_conversations // 3
        base = prod.base + "/api/v1"
        editor = cli(product_env(f"sqlite+aiosqlite:///{path}", 0), "agents", "create", "--email",
                     "bench-editor@bench.example", "--name", "Bench Editor", "--role",
                     "faq_editor").strip().splitlines()[-1]
        probes = [
            ("GET conversations, first page", f"{base}/conversations", cfg.requests),
            ("GET conversations, keyset page", f"{base}/conversations?cursor={cursor}", cfg.requests),
            ("GET conversations?status=open", f"{base}/conversations?status=open", cfg.requests),
            ("GET conversations/{id}/messages", f"{base}/conversations/{mid}/messages", cfg.requests),
            ("GET conversations/{id}", f"{base}/conversations/{mid}", cfg.requests),
            ("search q=warranty (rare word)", f"{base}/conversations?q=warranty", cfg.search_requests),
            ("search q=customer name", f"{base}/conversations?q=Customer%20{mid}", cfg.search_requests),
            ("search q=order (common word)", f"{base}/conversations?q=order", cfg.search_requests),
            ("search q=Hi (2 chars, common)", f"{base}/conversations?q=Hi", cfg.search_requests),
            ("search q=zq (2 chars, no match)", f"{base}/conversations?q=zq", cfg.search_requests),
            ("search q=warranty, keyset page", f"{base}/conversations?q=warranty&cursor={cursor}",
             cfg.search_requests),
            ("contact search q=name", f"{base}/contacts?q=Customer%20{mid}", cfg.search_requests),
            ("contact search q=phone digits", f"{base}/contacts?q={mid:07d}", cfg.search_requests),
            (f"FAQ unanswered groups ({cfg.big_unanswered // 1000}k open)",
             f"{base}/faq/unanswered", cfg.search_requests),
        ]
        for label, url, n in probes:
            token = editor if "unanswered" in label else prod.token
            cpu0 = cpu_seconds(prod.pids())
            p50, p99, status = _time_get(url, token, n)
            # Server CPU per request (10 ms clock ticks spread over the n + 2 calls): unlike
            # the wall times, other work on the machine barely moves it.
            cpu = (cpu_seconds(prod.pids()) - cpu0) / (n + 2) * 1000
            budget = 200 if "search" in label or "unanswered" in label else 50
            t.add(sc, label + f" (n={n})", f"{p50:.1f} / {p99:.1f} ms, cpu {cpu:.1f}",
                  f"p99 < {budget} ms*", status == 200 and p99 < budget)
    finally:
        prod.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.scale_bench [--quick]` runs the full bench unless --quick;
    `make bench` (`python -m bench`, which calls main() without arguments) runs the full
    one too (about 4.5 minutes on 2 busy cores); SCALE_BENCH_QUICK=1 makes it quick."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale_bench")
    parser.add_argument("--quick", action="store_true", help="smaller and shorter")
    parser.add_argument("--only", default="", help="comma list of scenarios: A,C,D,E (A includes B)")
    if argv is None:
        argv = ["--quick"] if os.environ.get("SCALE_BENCH_QUICK") == "1" else []
    args = parser.parse_args(list(argv))
    full = not args.quick
    cfg = argparse.Namespace(
        duration=8.0 if full else 5.0, paced_duration=10.0 if full else 5.0, conns=16,
        rounds=3 if full else 2,
        idle=int(os.environ.get("BENCH_IDLE", 5000 if full else 1000)),
        idle_duration=10.0 if full else 5.0, idle_grace=10.0,
        big_conversations=100_000 if full else 20_000, big_messages=1_000_000 if full else 200_000,
        big_unanswered=20_000 if full else 5_000,
        requests=50 if full else 20, search_requests=10 if full else 5)
    only = {s.strip().upper() for s in args.only.split(",") if s.strip()}
    raised_nofile()
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores); Python {platform.python_version()}")
    print(f"scale bench, {'FULL' if full else 'QUICK (python -m bench.scale_bench for the full run)'}: "
          f"closed-loop runs {cfg.duration:.0f} s x {cfg.conns} connections, paced runs "
          f"{cfg.paced_duration:.0f} s; load generator, servers, PostgreSQL and Redis share the cores.")
    print(f"load average before: {' '.join(open('/proc/loadavg').read().split()[:3])} "
          "(other work on the machine inflates every number below)")
    print("latency = just before the POST -> the message.created frame on each active agent socket; "
          "values 'p50 / p99'.\n", flush=True)
    t = Table()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmpdir:
        tmp = Path(tmpdir)
        steps = [("A", scenario_throughput), ("C", scenario_two_workers), ("D", scenario_idle),
                 ("E", scenario_big)]
        for key, step in steps:
            if only and key not in only:
                continue
            try:
                step(t, tmp, cfg)
            except Exception as exc:
                t.add(f"{key} (error)", type(exc).__name__, str(exc)[:60])
                print(str(exc)[-3000:], file=sys.stderr)
    print(f"\n=== scale bench ({'FULL' if full else 'QUICK: python -m bench.scale_bench for the full run'}; "
          f"{time.monotonic() - started:.0f} s; CPU: {cpu_name()}, {os.cpu_count()} cores; load average "
          f"after: {' '.join(open('/proc/loadavg').read().split()[:3])}) ===")
    print(t.render())
    print("* E: this bench's budget for an interactive page (the issue sets no target there); "
          "'cpu' is the server's CPU ms per request.")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))
