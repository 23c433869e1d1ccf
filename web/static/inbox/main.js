// The agent inbox: list + thread + customer panel, kept live by /ws/agent.
import { api, query } from "./api.js";
import { debounce, el } from "./dom.js";
import { matches, renderList, sortConversations } from "./list.js";
import { renderPanel } from "./panel.js";
import { AgentSocket } from "./socket.js";
import { Thread } from "./thread.js";

const root = document.getElementById("inbox");
const me = Number(root.dataset.agentId);
const listNode = document.getElementById("conversations");
const emptyNode = document.getElementById("list-empty");
const threadPane = document.getElementById("thread");
const panelPane = document.getElementById("panel");
const banner = document.getElementById("banner");
const connNode = document.getElementById("conn");

const state = {
  view: "all", status: "", channel: "", q: "",
  convs: new Map(), loaded: false, pending: [], thread: null,
  // The conversation being opened and its events that arrive while it loads: the
  // thread built from the REST answer may predate them.
  opening: null,
};
const agents = new Map();

const socket = new AgentSocket({
  onEvent: (ev) => (state.loaded ? apply(ev) : state.pending.push(ev)),
  onState: (s) => {
    connNode.textContent = s === "live" ? "● live" : s === "connecting" ? "○ connecting…" : "○ offline, reconnecting…";
    connNode.className = `conn ${s}`;
  },
  onCaughtUp: () => showBanner("Reconnected, caught up."),
  onHello: (_ev, resuming) => { if (!resuming) loadList(); },
});
const ctx = {
  me, agents, socket,
  onBack: () => root.classList.remove("show-thread"),
};

let bannerTimer = null;
function showBanner(text) {
  banner.textContent = text;
  banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => { banner.hidden = true; }, 6000);
}

function filters() {
  return { view: state.view, status: state.status, channel: state.channel, me };
}

function render() {
  const convs = sortConversations([...state.convs.values()].filter((c) => matches(c, filters())));
  renderList(listNode, convs, { currentId: state.thread && state.thread.id, onOpen: openConversation, agents, me });
  emptyNode.hidden = convs.length > 0;
  const unread = convs.reduce((n, c) => n + (c.unread_count > 0 ? 1 : 0), 0);
  document.title = `${unread ? `(${unread}) ` : ""}Inbox · Omnichannel Inbox`;
}

/** What this inbox shows, for the server's routing: the list filter (search aside: the
 *  server cannot judge it, so it sends the filter's events and the list re-queries) and
 *  the open conversation. */
function watchFrame() {
  const view = { status: state.status || null, channel: state.channel || null };
  if (state.view === "mine") view.assignee = "me";
  if (state.view === "unassigned") view.assignee = "none";
  if (state.view === "bot") view.handled_by = "bot";
  return { view, conversation_id: state.thread ? state.thread.id : null };
}

/** The list filter changed: watch the new view, then load the list (once the server
 *  confirms, so no event falls between the two). */
function changeView() {
  if (!socket.setWatch(watchFrame(), loadList)) loadList();
}

function listParams() {
  const params = { status: state.status, channel: state.channel, q: state.q, limit: 100 };
  if (state.view === "mine") params.assignee = "me";
  if (state.view === "unassigned") params.assignee = "none";
  if (state.view === "bot") params.handled_by = "bot";
  return params;
}

async function loadList() {
  try {
    const data = await api(`/api/v1/conversations${query(listParams())}`);
    state.convs = new Map(data.items.map((c) => [c.id, c]));
    setCursor(data.next_cursor);
  } catch (err) {
    showBanner(`Could not load conversations: ${err.message}`);
  }
  state.loaded = true;
  const pending = state.pending.splice(0);
  for (const ev of pending) apply(ev, { quiet: true });
  render();
}

const moreButton = el("button", { type: "button", class: "link more", hidden: true, onclick: loadMore }, "Load more conversations");
listNode.after(moreButton);

function setCursor(cursor) {
  state.cursor = cursor || null;
  moreButton.hidden = !state.cursor;
}

async function loadMore() {
  if (!state.cursor) return;
  try {
    const data = await api(`/api/v1/conversations${query({ ...listParams(), cursor: state.cursor })}`);
    for (const c of data.items) if (!state.convs.has(c.id)) state.convs.set(c.id, c);
    setCursor(data.next_cursor);
    render();
  } catch (err) {
    showBanner(`Could not load more: ${err.message}`);
  }
}

/** Merge a summary; events without a name or last message keep the ones we have. */
function upsert(summary, message) {
  const old = state.convs.get(summary.id);
  const merged = { ...(old || {}), ...summary };
  if (!summary.contact_name && old) merged.contact_name = old.contact_name;
  if (!summary.last_message && old) merged.last_message = old.last_message;
  if (message) {
    merged.last_message = { id: message.id, author: message.author, text: message.text, private: message.private, created_at: message.created_at };
  }
  if (state.q && !old) {
    refreshSearch();
    return;
  }
  state.convs.set(summary.id, merged);
}

const refreshSearch = debounce(() => loadList(), 300);

function apply(ev, { quiet = false } = {}) {
  const t = state.thread;
  if (state.opening && ev.conversation_id === state.opening.id) state.opening.events.push(ev);
  switch (ev.type) {
    case "message.created":
    case "message.updated": {
      if (ev.conversation) upsert(ev.conversation, ev.type === "message.created" ? ev.message : null);
      if (t && ev.conversation_id === t.id && ev.message) {
        t.append(ev.message);
        if (ev.conversation) t.updateConversation(ev.conversation);
        if (ev.type === "message.created" && ev.message.author === "customer" && !document.hidden) markRead(t.id);
      }
      break;
    }
    case "conversation.created":
    case "conversation.updated":
      if (ev.conversation) upsert(ev.conversation);
      if (t && ev.conversation_id === t.id && ev.conversation) t.updateConversation(ev.conversation);
      break;
    case "contact.updated":
      if (t && ev.contact && t.conv.contact_id === ev.contact.id) refreshPanel();
      for (const c of state.convs.values()) {
        if (ev.contact && c.contact_id === ev.contact.id && ev.contact.name) c.contact_name = ev.contact.name;
      }
      break;
    case "order.updated":
      if (t && ev.order && orderConcerns(ev.order, t)) refreshPanel();
      return;
    case "typing":
    case "viewing":
      if (t && ev.conversation_id === t.id) t.showPresence(ev);
      return;
    default:
      return;
  }
  if (!quiet) render();
}

/** Does an order belong to the open conversation's customer (by link, email or phone)? */
function orderConcerns(order, thread) {
  if (order.contact_id && order.contact_id === thread.conv.contact_id) return true;
  const identities = (thread.contact && thread.contact.identities) || [];
  return identities.some((i) => (i.kind === "email" && i.value === order.customer_email)
    || (i.kind === "phone" && i.value === order.customer_phone));
}

async function markRead(id) {
  try { await api(`/api/v1/conversations/${id}/read`, { method: "POST" }); } catch { /* harmless */ }
}

function refreshPanel() {
  const t = state.thread;
  if (!t) return;
  renderPanel(panelPane, t.conv.contact_id, {
    currentId: t.id, onOpen: openConversation, onInsert: (line) => state.thread && state.thread.insertText(line),
  });
}

async function openConversation(id) {
  const opening = { id, events: [] };
  state.opening = opening;
  let data;
  try {
    data = await api(`/api/v1/conversations/${id}`);
  } catch (err) {
    if (state.opening === opening) state.opening = null;
    showBanner(err.message);
    return;
  }
  if (state.opening !== opening) return; // another conversation was opened meanwhile
  state.opening = null;
  if (state.thread) state.thread.destroy();
  state.thread = new Thread(threadPane, data, ctx);
  // Messages that arrived while it loaded and that the answer was read too early to
  // hold (with their conversation, newer than the answer's for the same reason).
  for (const ev of opening.events) {
    if (ev.type !== "message.created" || !ev.message || state.thread.ids.has(ev.message.id)) continue;
    state.thread.append(ev.message, { scroll: false });
    if (ev.conversation) state.thread.updateConversation(ev.conversation);
  }
  root.classList.add("show-thread");
  history.replaceState(null, "", `#c${id}`);
  socket.setWatch(watchFrame());
  const conv = state.convs.get(id);
  if (conv) conv.unread_count = 0;
  render();
  refreshPanel();
  if (data.conversation.unread_count) markRead(id);
  state.thread.focusComposer();
}

// -- controls -------------------------------------------------------------------------
for (const button of document.querySelectorAll(".view")) {
  button.addEventListener("click", () => {
    state.view = button.dataset.view;
    for (const b of document.querySelectorAll(".view")) b.setAttribute("aria-pressed", String(b === button));
    changeView();
  });
}
document.getElementById("f-status").addEventListener("change", (e) => { state.status = e.target.value; changeView(); });
document.getElementById("f-channel").addEventListener("change", (e) => { state.channel = e.target.value; changeView(); });
const search = document.getElementById("f-search");
search.addEventListener("input", debounce(() => { state.q = search.value.trim(); loadList(); }, 250));
document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());

// Waiting times tick on their own.
setInterval(render, 30000);

async function start() {
  try {
    const data = await api("/api/v1/agents");
    for (const a of data.items) agents.set(a.id, a);
  } catch { /* names fall back to "Agent" */ }
  socket.watch = watchFrame(); // sent with the connect: routed from the first event on
  socket.connect(); // subscribe first, then load the list on "hello" (nothing falls between)
  const hash = /^#c(\d+)$/.exec(location.hash);
  if (hash) openConversation(Number(hash[1]));
}

// For tests and debugging: close the socket as a network drop would.
window.inboxDebug = { dropSocket: (holdMs = 0) => socket.drop(holdMs), socket };

start();
