// One open conversation: header and actions, messages, who else is here, and the composer.
import { api, query } from "./api.js";
import { el, when } from "./dom.js";
import { channelBadge } from "./icons.js";
import { Composer } from "./composer.js";
import { displayName } from "./list.js";
import { renderMessage } from "./message.js";

export class Thread {
  constructor(container, data, ctx) {
    this.container = container;
    this.ctx = ctx;
    this.conv = data.conversation;
    this.contact = data.contact;
    this.ids = new Set();
    this.presence = new Map(); // key -> {text, timer}
    this.build(data);
    this.viewingTimer = setInterval(() => this.announce("viewing"), 10000);
    this.announce("viewing");
  }

  destroy() {
    clearInterval(this.viewingTimer);
    for (const p of this.presence.values()) clearTimeout(p.timer);
  }

  get id() { return this.conv.id; }

  announce(type) {
    this.ctx.socket.send({ type, conversation_id: this.conv.id });
  }

  build(data) {
    this.header = el("header", { class: "thread-head" });
    this.actions = el("div", { class: "actions", role: "group", "aria-label": "Conversation actions" });
    this.presenceLine = el("p", { class: "presence", "aria-live": "polite" });
    this.older = el("button", { type: "button", class: "link older", hidden: !data.has_more, onclick: () => this.loadOlder() }, "Load older messages");
    this.list = el("ol", { class: "messages", "aria-label": "Messages" });
    this.composer = new Composer(this);
    const back = el("button", { type: "button", class: "back", onclick: () => this.ctx.onBack() }, "← Conversations");
    this.container.replaceChildren(back, this.header, this.actions, this.older, this.list, this.presenceLine, this.composer.form);
    this.renderHeader();
    for (const m of data.messages) this.append(m, { scroll: false });
    this.scrollDown();
    this.composer.refreshChannelState();
  }

  renderHeader() {
    const c = this.conv;
    const assignee = c.assignee_id ? this.ctx.agents.get(c.assignee_id) : null;
    this.header.replaceChildren(...[
      el("h2", { id: "thread-title" }, displayName(c)),
      el("div", { class: "thread-meta" },
        channelBadge(c.channel),
        el("span", { class: `status st-${c.status}` }, c.status),
        el("span", {}, c.handled_by === "bot" ? "bot is answering" : "human-handled"),
        el("span", {}, assignee ? `assigned to ${assignee.name}` : "unassigned"),
        c.status === "snoozed" && c.snoozed_until ? el("span", {}, `until ${when(c.snoozed_until)}`) : null),
      c.subject ? el("p", { class: "thread-subject" }, el("span", { class: "muted" }, "Subject: "), c.subject) : null,
    ].filter(Boolean));
    this.renderActions();
  }

  renderActions() {
    const c = this.conv;
    // Re-render only on a real change, so a half-made choice (agent picked, snooze
    // time typed) survives unrelated updates of the same conversation.
    const key = [c.status, c.assignee_id, c.handled_by].join("|");
    if (key === this.actionsKey) return;
    this.actionsKey = key;
    const me = this.ctx.me;
    const act = (label, fn, attrs = {}) => el("button", { type: "button", ...attrs, onclick: () => this.run(fn) }, label);
    const select = el("select", { id: "assign-to", "aria-label": "Assign to agent" },
      el("option", { value: "" }, "Unassigned"),
      ...[...this.ctx.agents.values()].filter((a) => a.role !== "faq_editor" && a.is_active)
        .map((a) => el("option", { value: a.id, selected: a.id === c.assignee_id }, a.name)));
    const snoozeInput = el("input", { type: "datetime-local", id: "snooze-until", "aria-label": "Snooze until" });
    const tomorrow = new Date(Date.now() + 24 * 3600 * 1000);
    tomorrow.setMinutes(tomorrow.getMinutes() - tomorrow.getTimezoneOffset());
    snoozeInput.value = tomorrow.toISOString().slice(0, 16);
    const path = `/api/v1/conversations/${c.id}`;
    this.actions.replaceChildren(...[
      c.assignee_id !== me ? act("Assign to me", () => api(`${path}/assign`, { method: "POST", body: { agent_id: "me" } })) : null,
      el("span", { class: "inline" }, select,
        act("Assign", () => api(`${path}/assign`, { method: "POST", body: { agent_id: select.value ? Number(select.value) : null } }))),
      c.handled_by === "bot" ? act("Take over from bot", () => api(`${path}/take_over`, { method: "POST" })) : null,
      c.status === "resolved" || c.status === "snoozed"
        ? act("Reopen", () => api(`${path}/status`, { method: "POST", body: { status: "open" } })) : null,
      c.status !== "resolved"
        ? act("Resolve", () => api(`${path}/status`, { method: "POST", body: { status: "resolved" } }), { class: "primary" }) : null,
      el("span", { class: "inline" }, snoozeInput,
        act("Snooze", () => {
          if (!snoozeInput.value) throw new Error("pick a time to snooze until");
          return api(`${path}/status`, { method: "POST", body: { status: "snoozed", snoozed_until: new Date(snoozeInput.value).toISOString() } });
        })),
    ].filter(Boolean));
  }

  async run(fn) {
    this.composer.showError("");
    try {
      const summary = await fn();
      if (summary && summary.id === this.conv.id) this.updateConversation(summary);
    } catch (err) {
      this.composer.showError(err.message);
    }
  }

  updateConversation(summary) {
    const keep = { contact_name: this.conv.contact_name, last_message: this.conv.last_message };
    this.conv = { ...this.conv, ...summary };
    if (!summary.contact_name) this.conv.contact_name = keep.contact_name;
    if (!summary.last_message) this.conv.last_message = keep.last_message;
    this.renderHeader();
    this.composer.refreshChannelState();
  }

  append(m, { scroll = true } = {}) {
    if (this.ids.has(m.id)) return this.update(m);
    this.ids.add(m.id);
    const node = renderMessage(m, this.ctx, this.conv);
    const after = [...this.list.children].find((li) => Number(li.dataset.id) > m.id);
    this.list.insertBefore(node, after || null);
    if (m.author === "customer") this.clearPresence("customer");
    if (scroll) this.scrollDown();
  }

  update(m) {
    const old = this.list.querySelector(`li[data-id="${CSS.escape(String(m.id))}"]`);
    if (old) old.replaceWith(renderMessage(m, this.ctx, this.conv));
  }

  scrollDown() {
    const last = this.list.lastElementChild;
    if (last && last.scrollIntoView) last.scrollIntoView({ block: "end" });
  }

  async loadOlder() {
    const first = this.list.firstElementChild;
    if (!first) return;
    try {
      const page = await api(`/api/v1/conversations/${this.conv.id}/messages${query({ before: first.dataset.id })}`);
      for (const m of page.items) this.append(m, { scroll: false });
      this.older.hidden = !page.has_more;
    } catch (err) {
      this.composer.showError(err.message);
    }
  }

  // -- presence -----------------------------------------------------------------------
  showPresence(ev) {
    if (ev.agent_id === this.ctx.me) return;
    const who = ev.who === "customer" ? "customer" : `agent-${ev.agent_id}`;
    const name = ev.who === "customer" ? displayName(this.conv) : (ev.name || "Another agent");
    const typing = ev.type === "typing";
    const key = `${who}:${typing ? "typing" : "viewing"}`;
    const existing = this.presence.get(key);
    if (existing) clearTimeout(existing.timer);
    const text = typing ? `${name} is typing…` : `${name} is viewing`;
    const timer = setTimeout(() => { this.presence.delete(key); this.renderPresence(); }, typing ? 6000 : 25000);
    this.presence.set(key, { text, timer });
    this.renderPresence();
  }

  clearPresence(prefix) {
    for (const [key, p] of this.presence) {
      if (key.startsWith(`${prefix}:typing`)) { clearTimeout(p.timer); this.presence.delete(key); }
    }
    this.renderPresence();
  }

  renderPresence() {
    // Someone typing beats the same person merely viewing.
    const texts = [];
    for (const [key, p] of this.presence) {
      const [who, what] = key.split(":");
      if (what === "viewing" && this.presence.has(`${who}:typing`)) continue;
      texts.push(p.text);
    }
    this.presenceLine.textContent = texts.join(" · ");
  }

  insertText(line) { this.composer.insertText(line); }

  focusComposer() { this.composer.focusComposer(); }
}
