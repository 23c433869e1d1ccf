// The agent event stream with resume: keep the highest seq seen, reconnect with ?since=.
//
// Callbacks: onEvent(event) for every seq'd or ephemeral event, onState(state) with
// "connecting" | "live" | "offline", onCaughtUp() once a reconnect has replayed
// everything that was missed.
//
// Routing: setWatch({view, conversation_id}) tells the server what this inbox shows (the
// list filter and the open conversation); it then sends only the events those concern.
// The watch rides on the URL of every (re)connect, so a resume replays what the view
// would have received, and goes as a {"type": "watch"} frame when it changes.

export class AgentSocket {
  constructor({ onEvent, onState, onCaughtUp, onHello }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.onCaughtUp = onCaughtUp;
    this.onHello = onHello;
    this.lastSeq = null;
    this.ws = null;
    this.retry = 0;
    this.waitFor = null; // seq that marks "caught up" after a reconnect
    this.stopped = false;
    this.heldUntil = 0;
    this.connects = 0; // sessions opened (hello received), for status and tests
    this.watch = null; // {view, conversation_id}: what this inbox shows
    this.afterWatch = null; // called once the server confirms the current watch
  }

  /**
   * Show only what `watch` concerns from now on. Returns true when the watch went to a
   * live socket: `then` runs once the server confirms it (every event sent under the
   * old watch has arrived by then), so state loaded in `then` misses nothing. Returns
   * false when offline: the next connect carries it.
   */
  setWatch(watch, then = null) {
    this.watch = watch;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.afterWatch = then;
      this.ws.send(JSON.stringify({ type: "watch", ...watch }));
      return true;
    }
    this.afterWatch = null;
    return false;
  }

  /** Drop the connection as a network failure would, staying away for `ms` (tests, debugging). */
  drop(ms = 0) {
    this.heldUntil = Date.now() + ms;
    if (this.ws) this.ws.close();
  }

  url() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams();
    if (this.lastSeq !== null) params.set("since", String(this.lastSeq));
    if (this.watch) params.set("watch", JSON.stringify(this.watch));
    const query = params.toString();
    return `${proto}://${location.host}/ws/agent${query ? `?${query}` : ""}`;
  }

  connect() {
    const resuming = this.lastSeq !== null;
    this.onState("connecting");
    const ws = new WebSocket(this.url());
    const urlWatch = this.watch;
    this.ws = ws;
    ws.addEventListener("message", (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      if (ev.type === "hello") {
        this.retry = 0;
        this.connects += 1;
        this.onState("live");
        if (this.lastSeq === null) this.lastSeq = ev.seq;
        // Changed while connecting (e.g. a conversation opened from the URL): send it now.
        if (this.watch !== urlWatch) ws.send(JSON.stringify({ type: "watch", ...this.watch }));
        if (resuming) {
          if (ev.seq <= this.lastSeq) this.caughtUp();
          else this.waitFor = ev.seq;
        }
        this.onHello?.(ev, resuming);
        return;
      }
      if (ev.type === "ping") return;
      if (ev.type === "resync") return; // the server closes next; we resume from lastSeq
      if (ev.type === "watching") {
        const then = this.afterWatch;
        this.afterWatch = null;
        then?.();
        return;
      }
      if (ev.type === "caught_up") {
        // A watching socket's replay is over (it may have sent none of the events).
        if (this.lastSeq === null || ev.seq > this.lastSeq) this.lastSeq = ev.seq;
        if (this.waitFor !== null) this.caughtUp();
        return;
      }
      if (typeof ev.seq === "number") {
        if (this.lastSeq !== null && ev.seq <= this.lastSeq) return; // already applied
        this.lastSeq = ev.seq;
      }
      this.onEvent(ev);
      if (this.waitFor !== null && typeof ev.seq === "number" && ev.seq >= this.waitFor) this.caughtUp();
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.onState("offline");
      // A watch sent but never confirmed: go on now (the reconnect carries the watch).
      const then = this.afterWatch;
      this.afterWatch = null;
      then?.();
      if (this.stopped) return;
      // Back off 0.5s, 1s, 2s ... up to 10s, with jitter so many tabs do not stampede.
      const backoff = Math.min(10000, 500 * 2 ** this.retry) * (0.8 + Math.random() * 0.4);
      const delay = Math.max(backoff, this.heldUntil - Date.now());
      this.retry += 1;
      setTimeout(() => this.connect(), delay);
    });
  }

  caughtUp() {
    this.waitFor = null;
    this.onCaughtUp?.();
  }

  /** Send a client frame (typing/viewing); dropped while offline (they are ephemeral). */
  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }
}
