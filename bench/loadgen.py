"""Load generator for the scale benchmark (issue 7), run as its own process.

    python -m bench.loadgen --base http://127.0.0.1:8100 --agent-token T \\
        --twilio-token TOKEN --account-sid AC... --agents 50 --mode paced --rate 100 \\
        --duration 10 [--idle 5000] [--server-pids 123,456]

It connects `--agents` active agent websockets (`/ws/agent?token=`) and optionally
`--idle` idle ones, then posts inbound SMS webhooks to `/webhooks/twilio`, each form
built like Twilio's (`connectors.simulate.twilio_form`) and signed with the real
`twilio` RequestValidator over the URL it posts to. Each message's text carries a
marker `zq<N>q`; the time just before the POST is written and the time each active
agent socket receives the `message.created` frame with that marker give the latency.

Modes: `closed` (each of `--conns` keep-alive connections posts as fast as answers come:
throughput) and `paced` (message i is due at start + i/rate, spread over the
connections; latency is measured from the actual send).

Routing: `--idle-watch JSON` makes each idle agent socket send a watch frame
(`{"type": "watch", **JSON}`, e.g. `{"view": {"assignee": "me"}}`) and wait for the
server's `watching` before the run; `--watch JSON` gives the active agents a watch on
their URL (`?watch=`), so a reconnect replays what the view would have received.

Lost = a message acknowledged by 200 but not seen, by the end of the grace period, by an
active agent socket that should see it (each active agent is one pair). An active
socket the server closes (resync) reconnects with `?since=` its last seq, as the
contract tells clients to, so a replayed event is late, not lost.

Clients are raw asyncio protocols (HTTP/1.1 keep-alive and a minimal RFC 6455 client
without compression) so that the generator costs far less CPU than the server it
measures. Each posting connection binds its own 127.0.x.y source address, as Twilio
posts from a pool of addresses (the product rate-limits webhooks per source address).

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import struct
import sys
import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from twilio.request_validator import RequestValidator

from connectors.simulate import twilio_form

MARK_RE = re.compile(rb"zq(\d+)q")
SEQ_RE = re.compile(rb'"seq":\s*(\d+)')
CREATED = b'"message.created"'
OUR_NUMBER = "+15550009999"
clock = time.perf_counter


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    except (ValueError, OSError):
        return soft


def rss_kib(pids: list[int]) -> int:
    """Resident set size of these processes, summed (KiB)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


# ---------------------------------------------------------------------------- websockets


class WsClient(asyncio.Protocol):
    """A minimal websocket client: handshake, unmasked server frames, pong, close.

    Active clients note the arrival time of every `message.created` frame's marker;
    idle clients only answer pings and discard what they receive."""

    def __init__(self, host: str, path: str, *, active: bool,
                 seen: dict[int, float] | None = None, last_seq: int = 0,
                 watch: bytes | None = None) -> None:
        self.host = host
        self.path = path
        self.active = active
        self.watch = watch  # a watch frame to send after hello; opened once confirmed
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.buf = bytearray()
        self.opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.seen = seen  # shared by an agent's successive sockets
        self.last_seq = last_seq
        self.close_code: int | None = None
        self.frames = 0
        self.events = 0  # idle sockets: text frames after opening that were not pings
        self.seqs: list[int] | None = [] if active else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        now = clock()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.upgraded = True
            del buf[:end + 4]
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            ln = b1 & 0x7F
            off = pos + 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = (buf[pos + 2] << 8) | buf[pos + 3]
                off = pos + 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = struct.unpack_from("!Q", buf, pos + 2)[0]
                off = pos + 10
            if b1 & 0x80:
                off += 4  # a masked server frame (not expected); skip the key, keep going
            if n - off < ln:
                break
            opcode = b0 & 0x0F
            pos = off + ln
            self.frames += 1
            if opcode in (1, 0):
                if self.active or not self.opened.done():
                    self._text(bytes(buf[off:pos]), now)
                elif not buf.startswith(b'{"type":"ping"', off):
                    self.events += 1  # an idle socket sent something other than a heartbeat
            elif opcode == 9:
                self._send(0xA, bytes(buf[off:pos]))
            elif opcode == 8:
                payload = bytes(buf[off:pos])
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._send(0x8, payload[:2])
                self.transport.close()  # type: ignore[union-attr]
        if pos:
            del buf[:pos]

    def _text(self, payload: bytes, now: float) -> None:
        if not self.opened.done():
            if self.watch is None:
                self.opened.set_result(True)
            elif payload.startswith((b'{"type":"hello"', b'{"type": "hello"')):
                self._send(0x1, self.watch)
            elif b'"type":"watching"' in payload:
                self.opened.set_result(True)
            elif b'"type":"error"' in payload or b'"type": "error"' in payload:
                self.opened.set_exception(ConnectionError(payload.decode(errors="replace")))
        m = SEQ_RE.search(payload, 0, 40)
        if m is not None and (payload.startswith(b'{"seq"') or not self.last_seq):
            seq = int(m.group(1))  # events carry seq first; the hello only starts the count
            if self.seqs is not None and payload.startswith(b'{"seq"'):
                self.seqs.append(seq)
            if seq > self.last_seq:
                self.last_seq = seq
        if self.seen is not None and CREATED in payload:
            mark = MARK_RE.search(payload)
            if mark is not None:
                self.seen.setdefault(int(mark.group(1)), now)

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        n = len(payload)
        head = bytes([0x80 | opcode, 0x80 | n]) if n < 126 else \
            bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
        self.transport.write(head + mask + masked)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before hello ({exc})"))
        if not self.lost.done():
            self.lost.set_result(self.close_code)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._send(0x8, struct.pack("!H", 1000))
            self.transport.close()


async def open_ws(host: str, port: int, path: str, *, active: bool, timeout: float = 30.0,
                  seen: dict[int, float] | None = None, last_seq: int = 0,
                  watch: bytes | None = None) -> WsClient:
    loop = asyncio.get_running_loop()
    _t, proto = await asyncio.wait_for(
        loop.create_connection(lambda: WsClient(f"{host}:{port}", path, active=active, seen=seen,
                                                last_seq=last_seq, watch=watch), host, port),
        timeout)
    await asyncio.wait_for(proto.opened, timeout)
    return proto


class ActiveAgent:
    """One active agent: a socket that reconnects with `since` when the server drops it."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.seen: dict[int, float] = {}
        self.ws: WsClient | None = None
        self.reconnects = 0
        self.close_codes: list[int | None] = []
        self.stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ws = await open_ws(self.host, self.port, self.path, active=True, seen=self.seen)
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while not self.stopping:
            assert self.ws is not None
            code = await self.ws.lost
            if self.stopping:
                return
            self.close_codes.append(code)
            last = self.ws.last_seq
            sep = "&" if "?" in self.path else "?"
            while not self.stopping:
                try:
                    ws = await open_ws(self.host, self.port, f"{self.path}{sep}since={last}",
                                       active=True, seen=self.seen, last_seq=last)
                    break
                except (OSError, ConnectionError, TimeoutError):
                    await asyncio.sleep(0.2)
            else:
                return
            self.ws = ws
            self.reconnects += 1

    def stop(self) -> None:
        self.stopping = True
        if self._task is not None:
            self._task.cancel()
        if self.ws is not None:
            self.ws.close()


# ---------------------------------------------------------------------------- posting


class Poster:
    """One keep-alive HTTP/1.1 connection from its own source address."""

    def __init__(self, host: str, port: int, source: str) -> None:
        self.host, self.port, self.source = host, port, source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, local_addr=(self.source, 0))

    async def post(self, request: bytes) -> tuple[int, float, float]:
        """(status, send time, answer time); reconnects once on a dropped connection."""
        for attempt in (0, 1):
            if self.writer is None:
                await self.connect()
            assert self.reader is not None and self.writer is not None
            t0 = clock()
            try:
                self.writer.write(request)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError, ConnectionError):
                self.writer = None
                if attempt:
                    raise
                continue
            status = int(head[9:12])
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value)
                elif lname == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length:
                await self.reader.readexactly(length)
            t1 = clock()
            if close:
                self.writer.close()
                self.writer = None
            return status, t0, t1
        raise ConnectionError("unreachable")


class Messages:
    """Builds message N's signed request."""

    def __init__(self, base: str, twilio_token: str, account_sid: str, senders: int, run: str) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.url = base.rstrip("/") + "/webhooks/twilio"
        self.path = "/webhooks/twilio"
        self.validator = RequestValidator(twilio_token)
        self.account_sid = account_sid
        self.senders = senders
        self.run = run

    def request(self, n: int) -> bytes:
        # Customers of this run (numbers are blocks of 1,000,000 per run): the first message
        # of each opens a conversation, the later ones are follow-ups, the same mix each run.
        sender = f"+1202{n // 1_000_000 % 100:02d}{n % self.senders:05d}"
        form = twilio_form(sender=sender, recipient=OUR_NUMBER,
                           text=f"Hello, a question about my order (ref zq{n}q)", whatsapp=False,
                           name=None, account_sid=self.account_sid)
        body = urlencode(form).encode()
        signature = self.validator.compute_signature(self.url, form)
        return (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {signature}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# ---------------------------------------------------------------------------- the run


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fd_limit = raise_fd_limit()
    parts = urlsplit(args.base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = f"{args.ws_path}?token={args.agent_token}"
    if args.watch:
        path += "&watch=" + quote(json.dumps(json.loads(args.watch), separators=(",", ":")))
    idle_watch = None
    if args.idle_watch:
        idle_watch = json.dumps({"type": "watch", **json.loads(args.idle_watch)},
                                separators=(",", ":")).encode()
    pids = [int(p) for p in args.server_pids.split(",") if p]
    out: dict[str, Any] = {"fd_limit": fd_limit, "watch": args.watch or None,
                           "idle_watch": args.idle_watch or None}

    # Idle sockets first (memory per socket), in bounded batches of handshakes.
    idle: list[WsClient] = []
    if args.idle:
        await asyncio.sleep(0.5)
        rss0 = rss_kib(pids)
        t0 = clock()
        failures = 0
        for start in range(0, args.idle, args.idle_batch):
            batch = await asyncio.gather(*[
                open_ws(host, port, f"{args.idle_path}?token={args.agent_token}", active=False,
                        timeout=60, watch=idle_watch)
                for _ in range(start, min(args.idle, start + args.idle_batch))],
                return_exceptions=True)
            for item in batch:
                if isinstance(item, WsClient):
                    idle.append(item)
                else:
                    failures += 1
        out["idle_connect_s"] = clock() - t0
        await asyncio.sleep(2.0)
        rss1 = rss_kib(pids)
        if failures and not idle:
            out["idle_error"] = repr(next((b for b in batch if not isinstance(b, WsClient)), None))
        out.update(idle_connected=len(idle), idle_failures=failures, rss_before_kib=rss0,
                   rss_after_kib=rss1,
                   kib_per_idle=(rss1 - rss0) / len(idle) if idle else float("nan"))

    agents = [ActiveAgent(host, port, path) for _ in range(args.agents)]
    for start in range(0, len(agents), 50):
        await asyncio.gather(*[a.start() for a in agents[start:start + 50]])

    start_seq = agents[0].ws.last_seq if agents and agents[0].ws is not None else 0
    msgs = Messages(args.base, args.twilio_token, args.account_sid, args.senders, args.run)
    sources = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(args.conns)]
    posters = [Poster(host, port, src) for src in sources]
    await asyncio.gather(*[p.connect() for p in posters])

    sent: dict[int, float] = {}
    acked: dict[int, float] = {}
    statuses: dict[str, int] = {}
    errors = 0
    counter = iter(range(args.first, 10**12))

    async def one(poster: Poster, n: int) -> None:
        nonlocal errors
        request = msgs.request(n)
        try:
            status, t0, t1 = await poster.post(request)
        except Exception:
            errors += 1
            return
        sent[n] = t0
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 200:
            acked[n] = t1

    # Warm-up: a few messages one by one (lazy indexes, caches), counted for loss only.
    warm = [next(counter) for _ in range(args.warmup)]
    for n in warm:
        await one(posters[0], n)
    measured_from = len(sent)
    await asyncio.sleep(0.3)

    cpu0, own0 = cpu_seconds(pids), time.process_time()
    idle_frames0 = sum(w.frames for w in idle)
    idle_events0 = sum(w.events for w in idle)
    start = clock()
    deadline = start + args.duration
    if args.mode == "closed":
        async def loop(poster: Poster) -> None:
            while clock() < deadline:
                await one(poster, next(counter))
        await asyncio.gather(*[loop(p) for p in posters])
    else:
        total = int(args.rate * args.duration)
        ids = [next(counter) for _ in range(total)]

        async def paced(k: int) -> None:
            poster = posters[k]
            for i in range(k, total, len(posters)):
                delay = start + i / args.rate - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                await one(poster, ids[i])
        await asyncio.gather(*[paced(k) for k in range(len(posters))])
    end = clock()
    cpu1, own1 = cpu_seconds(pids), time.process_time()

    # Grace: wait until every active agent saw every acknowledged message.
    grace_end = clock() + args.grace
    while clock() < grace_end:
        if all(all(n in a.seen for n in acked) for a in agents):
            break
        await asyncio.sleep(0.1)
    waited = clock() - end

    warm_set = set(warm)
    measured = [n for n in acked if n not in warm_set]
    measured_ids = set(measured)
    lat: list[float] = []
    lost_pairs = 0
    lost_msgs = set()
    for a in agents:
        seen = a.seen
        for n in acked:
            t = seen.get(n)
            if t is None:
                lost_pairs += 1
                lost_msgs.add(n)
            elif n in measured_ids:
                lat.append((t - sent[n]) * 1000)
    ack_ms = [(acked[n] - sent[n]) * 1000 for n in measured]
    first_send = min((sent[n] for n in measured), default=start)
    last_ack = max((acked[n] for n in measured), default=end)
    span = max(1e-9, last_ack - first_send)
    out.update(
        mode=args.mode, agents=args.agents, conns=args.conns, rate=args.rate,
        duration_s=end - start, sent=len(sent) - measured_from, acked=len(acked),
        acked_measured=len(measured), statuses=statuses, errors=errors,
        # A customer's first message (a new contact and conversation, and the FAQ bot's
        # hand-over): the first `senders` numbers of a block (see Messages.request).
        first_messages=sum(1 for n in measured if n % 1_000_000 < args.senders),
        throughput=len(measured) / span, ack_p50_ms=percentile(ack_ms, 50),
        ack_p99_ms=percentile(ack_ms, 99), lat_p50_ms=percentile(lat, 50),
        lat_p90_ms=percentile(lat, 90), lat_p99_ms=percentile(lat, 99),
        lat_max_ms=max(lat) if lat else float("nan"), lat_samples=len(lat),
        lost_messages=len(lost_msgs), lost_pairs=lost_pairs, grace_waited_s=waited,
        reconnects=sum(a.reconnects for a in agents),
        close_codes=sorted({str(c) for a in agents for c in a.close_codes}),
        idle_dropped=sum(1 for w in idle if w.lost.done()),
        idle_frames=sum(w.frames for w in idle),
        idle_frames_run=sum(w.frames for w in idle) - idle_frames0,
        idle_events_run=sum(w.events for w in idle) - idle_events0,
        next_id=next(counter),
        server_cpu_s=cpu1 - cpu0, loadgen_cpu_s=own1 - own0,
        server_cpu_ms_per_msg=(cpu1 - cpu0) * 1000 / max(1, len(measured)) if pids else float("nan"),
        loadavg=open("/proc/loadavg").read().split()[:3])
    if lost_msgs and args.ws_path == "/ws/agent":
        # Late or lost? Replay the event log from before the run (`?since=`): a message
        # found there was committed but not delivered live within the grace period.
        out["not_live_in_log"] = await replay_check(host, port, path, start_seq, lost_msgs)
    if pids:
        out["rss_end_kib"] = rss_kib(pids)
    out["lost_sample"] = sorted(lost_msgs)[:20]
    # Gaps in the event seqs the first agent received (events never sent to it).
    if agents and agents[0].ws is not None and agents[0].ws.seqs:
        got = set(agents[0].ws.seqs)
        lo, hi = min(got), max(got)
        out["seq_gaps_agent0"] = [s for s in range(lo, hi + 1) if s not in got][:50]
    for a in agents:
        a.stop()
    for w in idle:
        w.close()
    await asyncio.sleep(0.2)
    return out


async def replay_check(host: str, port: int, path: str, since: int, wanted: set[int],
                       timeout: float = 20.0) -> int:
    """How many of `wanted` a fresh agent socket replaying from `since` receives."""
    seen: dict[int, float] = {}
    try:
        ws = await open_ws(host, port, f"{path}&since={since}", active=True, seen=seen)
    except (OSError, ConnectionError, TimeoutError):
        return -1
    deadline = clock() + timeout
    frames, quiet_since = ws.frames, clock()
    while clock() < deadline and not wanted <= seen.keys():
        await asyncio.sleep(0.2)
        if ws.frames != frames:
            frames, quiet_since = ws.frames, clock()
        elif clock() - quiet_since > 3.0:
            break
    ws.close()
    return len(wanted & seen.keys())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen")
    p.add_argument("--base", required=True, help="server URL, e.g. http://127.0.0.1:8100")
    p.add_argument("--agent-token", required=True)
    p.add_argument("--twilio-token", required=True)
    p.add_argument("--account-sid", default="AC" + "0" * 32)
    p.add_argument("--ws-path", default="/ws/agent")
    p.add_argument("--agents", type=int, default=1)
    p.add_argument("--idle", type=int, default=0)
    p.add_argument("--idle-path", default="/ws/agent")
    p.add_argument("--idle-batch", type=int, default=100)
    p.add_argument("--watch", default="", help='active agents\' watch, e.g. {"view": {"status": "open"}}')
    p.add_argument("--idle-watch", default="", help='idle agents\' watch frame body, e.g. {"view": {"assignee": "me"}}')
    p.add_argument("--mode", choices=["closed", "paced"], default="closed")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--grace", type=float, default=10.0)
    p.add_argument("--senders", type=int, default=200, help="distinct customers per run")
    p.add_argument("--first", type=int, default=1, help="first message number (unique per server)")
    p.add_argument("--server-pids", default="")
    p.add_argument("--run", default="r")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
