"""Fan-out CPU (issue 7): the server's CPU per event per agent socket, printed as a table.

    python -m bench.fanout_bench            # about seven minutes on 2 cores
    python -m bench.fanout_bench --quick    # fewer events, fewer socket counts

The product runs as a subprocess (`python -m inbox.cli serve`, one worker, a temporary
SQLite file, as `bench.scale_bench` starts it). This process holds N receiving agent
sockets (raw asyncio websocket clients from `bench.loadgen`, far cheaper than the server)
and makes the server publish events in three ways:

  typing burst   an injecting agent socket sends E typing frames, 100 back to back at a
                 time; each is an ephemeral event for every receiver (no watch: the
                 `all` topic)
  typing paced   the same, one at a time: the next is sent once every receiver got the
                 last (no batching possible: the worst case per frame)
  notes          E private notes posted one after another through the REST API: committed
                 events through the sequencer and the router, to receivers watching
                 `{"status": "open"}` (the conversation is open)

The server's CPU time (utime + stime from /proc, so a busy shared machine does not skew
it) is read around each run; each run is paired with one just before it with 0 receivers
(the cost of injecting alone), so `us/frame` = median(CPU with N receivers - CPU with 0)
/ (E x N): what one delivered frame costs the server (filter, queue, encode, websocket
send).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.loadgen import Poster, WsClient
from bench.scale_bench import (
    ACCOUNT_SID,
    TWILIO_TOKEN,
    Server,
    cli,
    cpu_name,
    cpu_seconds,
    product_env,
    start_product,
    wait_idle,
)
from connectors.simulate import twilio_form

TYPING = b'"type":"typing"'
# Typing frames sent back to back before waiting for every receiver to have them: well
# under the hub's queue (1,000), which a burst the server reads faster than it writes
# would overflow (that socket is told to resync, as it should be).
BURST = 100
CREATED = b'"type":"message.created"'


class Receiver(WsClient):
    """An agent socket that counts the frames of one kind and says when it has `want`."""

    def __init__(self, host: str, path: str, kind: bytes, watch: bytes | None) -> None:
        super().__init__(host, path, active=True, watch=watch)  # active: every frame is read
        self.kind = kind
        self.count = 0
        self.want = 0
        self.reached = asyncio.Event()

    def _text(self, payload: bytes, now: float) -> None:
        if not self.opened.done():
            super()._text(payload, now)
            return
        if self.kind in payload[:60]:
            self.count += 1
            if self.count >= self.want:
                self.reached.set()

    def expect(self, total: int) -> None:
        self.want = total
        if self.count >= total:
            self.reached.set()
        else:
            self.reached.clear()


async def connect(host: str, port: int, path: str, kind: bytes,
                  watch: dict[str, Any] | None = None) -> Receiver:
    frame = None if watch is None else json.dumps({"type": "watch", **watch}).encode()
    loop = asyncio.get_running_loop()
    _t, proto = await loop.create_connection(
        lambda: Receiver(f"{host}:{port}", path, kind, frame), host, port)
    await asyncio.wait_for(proto.opened, 30)
    return proto


def open_conversation(server: Server) -> int:
    """One inbound SMS through the signed webhook: the open conversation events are about."""
    url = server.base + "/webhooks/twilio"
    form = twilio_form(sender="+12025550100", recipient="+15550009999", text="Where is my order?",
                       whatsapp=False, name=None, account_sid=ACCOUNT_SID)
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    request = urllib.request.Request(url, data=urlencode(form).encode(),
                                     headers={"X-Twilio-Signature": signature})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
    request = urllib.request.Request(server.base + "/api/v1/conversations",
                                     headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        items = json.loads(resp.read())
    rows = items["items"] if isinstance(items, dict) else items
    return int(rows[0]["id"])


def note_request(host: str, port: int, token: str, cid: int, i: int) -> bytes:
    body = json.dumps({"text": f"note {i}", "private": True}).encode()
    return (f"POST /api/v1/conversations/{cid}/messages HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def one_run(server: Server, injector_token: str, cid: int, *, mode: str, sockets: int,
                  events: int) -> dict[str, Any]:
    """Server CPU seconds for `events` events of `mode` to `sockets` receivers."""
    host, port = "127.0.0.1", server.port
    kind = CREATED if mode == "notes" else TYPING
    watch = {"view": {"status": "open"}} if mode == "notes" else None
    receivers = [await connect(host, port, f"/ws/agent?token={server.token}", kind, watch)
                 for _ in range(sockets)]
    injector = await connect(host, port, f"/ws/agent?token={injector_token}", TYPING)
    poster = Poster(host, port, "127.0.0.1")
    await poster.connect()
    await asyncio.sleep(0.3)
    wait_idle(server, 10)
    typing = json.dumps({"type": "typing", "conversation_id": cid}).encode()
    pids = server.pids()
    cpu0, t0 = cpu_seconds(pids), time.perf_counter()
    if mode == "typing burst":
        for start in range(0, events, BURST):
            size = min(BURST, events - start)
            for r in receivers:
                r.expect(start + size)
            for _ in range(size):
                injector._send(0x1, typing)
            await asyncio.wait_for(asyncio.gather(*[r.reached.wait() for r in receivers]), 30)
            if not receivers:
                await asyncio.sleep(0.01)  # the server's own pace, roughly
    elif mode == "typing paced":
        for i in range(events):
            for r in receivers:
                r.expect(i + 1)
            injector._send(0x1, typing)
            await asyncio.wait_for(asyncio.gather(*[r.reached.wait() for r in receivers]), 30)
            if not receivers:
                await asyncio.sleep(0.0005)  # the server's own pace, roughly
    else:
        for r in receivers:
            r.expect(events)
        for i in range(events):
            status, _t0, _t1 = await poster.post(note_request(host, port, injector_token, cid, i))
            assert status == 201 or status == 200, status
        await asyncio.wait_for(asyncio.gather(*[r.reached.wait() for r in receivers]), 120)
    if not receivers:
        await asyncio.sleep(0.2)  # let the server finish what it was sent
    cpu = cpu_seconds(pids) - cpu0
    wall = time.perf_counter() - t0
    for ws in [*receivers, injector]:
        ws.close()
    if poster.writer is not None:
        poster.writer.close()
    await asyncio.sleep(0.3)
    return {"mode": mode, "sockets": sockets, "events": events, "cpu": cpu, "wall": wall,
            "frames": events * sockets}


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        db_url = f"sqlite+aiosqlite:///{tmp / 'fanout.db'}"
        server = start_product("fanout", tmp, db_url)
        try:
            env = product_env(db_url, server.port)
            injector = cli(env, "agents", "create", "--email", "injector@bench.example", "--name",
                           "Injector", "--role", "agent").strip().splitlines()[-1]
            cid = open_conversation(server)
            for mode, events in (("typing burst", args.events), ("typing paced", args.events // 2),
                                 ("notes", args.notes)):
                # Unmeasured: the first requests of a path compile and cache statements.
                await one_run(server, injector, cid, mode=mode, sockets=1, events=50)
                for sockets in args.sockets:
                    # Each run paired with one without receivers just before it (the cost of
                    # injecting alone, which drifts: storing a note is ~5-8 ms and noisy),
                    # and the median of the differences kept.
                    runs, diffs = [], []
                    for _ in range(args.repeat):
                        base = await one_run(server, injector, cid, mode=mode, sockets=0,
                                             events=events)
                        run_ = await one_run(server, injector, cid, mode=mode, sockets=sockets,
                                             events=events)
                        runs.append(run_)
                        diffs.append(run_["cpu"] - base["cpu"])
                    row = min(runs, key=lambda r: r["cpu"])
                    row["fanout_cpu"] = statistics.median(diffs)
                    row["us_frame"] = row["fanout_cpu"] / row["frames"] * 1e6
                    rows.append(row)
                    print(f"  {mode:13} {sockets:4} sockets  fan-out cpu "
                          + ", ".join(f"{d:.3f}" for d in diffs) + " s",
                          file=sys.stderr, flush=True)
        finally:
            server.stop()
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"fan-out CPU per delivered frame (server process, {cpu_name()})", "",
             (f"{'mode':14} {'sockets':>7} {'events':>7} {'frames':>7} {'server CPU s':>12} "
              f"{'fan-out s':>9} {'us/frame':>9}")]
    for r in rows:
        lines.append(f"{r['mode']:14} {r['sockets']:>7} {r['events']:>7} {r['frames']:>7} "
                     f"{r['cpu']:>12.3f} {r['fanout_cpu']:>9.3f} {r['us_frame']:>9.1f}")
    lines += ["", ("fan-out s: the server's CPU minus that of the same run without receivers "
                   "(median of the pairs); us/frame: that over the frames delivered. "
                   "CPU is read in 10 ms ticks.")]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and socket counts")
    parser.add_argument("--events", type=int, default=2000, help="typing events per run")
    parser.add_argument("--notes", type=int, default=300, help="private notes per run")
    parser.add_argument("--sockets", default="10,50,200", help="receiver counts (comma-separated)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per cell, each paired with one without receivers")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args(argv)
    args.sockets = [int(s) for s in str(args.sockets).split(",") if s]
    if args.quick:
        args.events, args.notes, args.sockets, args.repeat = 600, 100, [10, 50], 1
    rows = asyncio.run(run(args))
    print(table(rows))
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
