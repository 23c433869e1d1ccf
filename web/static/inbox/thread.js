// One open conversation: header and actions, messages, presence line and composer.
import { api, query } from "./api.js";
import { debounce, el, safeUrl, when } from "./dom.js";
import { channelBadge, channelLabel } from "./icons.js";
import { displayName } from "./list.js";

const TICKS = {
  pending: ["◷", "queued"], queued: ["◷", "queued"], sent: ["✓", "sent"],
  delivered: ["✓✓", "delivered"], read: ["✓✓", "read"],
};
const AUTHOR_LABEL = { customer: "Customer", agent: "Agent", bot: "Bot", system: "System" };

function authorName(m, ctx, conv) {
  if (m.author === "customer") return displayName(conv);
  if (m.author === "agent") {
    const agent = ctx.agents.get(m.author_agent_id);
    return agent ? agent.name : (m.meta && m.meta.author_name) || "Agent";
  }
  return AUTHOR_LABEL[m.author] || m.author;
}

function delivery(m) {
  if (m.direction !== "out" || m.private || !m.delivery_status) return null;
  const status = m.delivery_status;
  if (status === "failed" || status === "undelivered") {
    const reason = [m.error_text, m.error_code && `(${m.error_code})`].filter(Boolean).join(" ");
    return el("span", { class: "ticks failed", role: "note" }, `⚠ ${status}${reason ? `: ${reason}` : ""}`);
  }
  const [glyph, label] = TICKS[status] || ["", status];
  return el("span", { class: `ticks ${status}`, title: label },
    el("span", { "aria-hidden": "true" }, glyph), el("span", { class: "tick-label" }, ` ${label}`));
}

function attachmentList(m) {
  if (!m.attachments || !m.attachments.length) return null;
  const items = m.attachments.map((a, i) => {
    const href = a.file_id ? `/api/v1/files/${encodeURIComponent(a.file_id)}` : safeUrl(a.url);
    const label = a.filename || a.content_type || `attachment ${i + 1}`;
    return el("li", {}, href
      ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, `📎 ${label}`)
      : el("span", {}, `📎 ${label} (unavailable)`));
  });
  return el("ul", { class: "attachments", "aria-label": "Attachments" }, ...items);
}

function htmlToggle(m) {
  if (!m.html) return null;
  const wrap = el("div", { class: "html-view" });
  const button = el("button", { type: "button", class: "link", "aria-expanded": "false" }, "Show original formatting");
  let frame = null;
  button.addEventListener("click", () => {
    if (frame) {
      frame.remove(); frame = null;
      button.textContent = "Show original formatting";
      button.setAttribute("aria-expanded", "false");
      return;
    }
    // Sanitised on arrival, and still shown only in a frame with every sandbox flag off:
    // no scripts, no forms, no same-origin access.
    frame = el("iframe", { sandbox: "", title: "Original email formatting", class: "html-frame", referrerpolicy: "no-referrer" });
    frame.srcdoc = m.html;
    wrap.append(frame);
    button.textContent = "Hide original formatting";
    button.setAttribute("aria-expanded", "true");
  });
  wrap.prepend(button);
  return wrap;
}

export function renderMessage(m, ctx, conv) {
  const classes = ["msg", `a-${m.author}`, m.direction === "out" ? "out" : "in"];
  if (m.private) classes.push("private");
  const meta = m.meta || {};
  const head = el("div", { class: "msg-head" },
    el("span", { class: "msg-author" }, authorName(m, ctx, conv)),
    el("span", { class: "msg-kind" }, m.private ? "private note" : (AUTHOR_LABEL[m.author] || "")),
    el("time", { datetime: m.created_at, class: "msg-time" }, when(m.created_at)));
  const subject = m.channel === "email" && meta.subject && meta.subject !== conv.subject
    ? el("div", { class: "msg-subject" }, `Subject: ${meta.subject}`) : null;
  const quoted = typeof meta.quoted_text === "string" && meta.quoted_text.trim()
    ? el("details", { class: "quoted" }, el("summary", {}, "Quoted text"), el("pre", {}, meta.quoted_text))
    : null;
  return el("li", { class: classes.join(" "), "data-id": m.id },
    head, subject,
    el("div", { class: "msg-text" }, m.text || (m.html ? "(formatted message)" : "")),
    quoted, htmlToggle(m), attachmentList(m),
    el("div", { class: "msg-foot" }, delivery(m)));
}

export class Thread {
  constructor(container, data, ctx) {
    this.container = container;
    this.ctx = ctx;
    this.conv = data.conversation;
    this.contact = data.contact;
    this.ids = new Set();
    this.presence = new Map(); // key -> {text, timer}
    this.typingSentAt = 0;
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
    this.composer = this.buildComposer();
    const back = el("button", { type: "button", class: "back", onclick: () => this.ctx.onBack() }, "← Conversations");
    this.container.replaceChildren(back, this.header, this.actions, this.older, this.list, this.presenceLine, this.composer);
    this.renderHeader();
    for (const m of data.messages) this.append(m, { scroll: false });
    this.scrollDown();
    this.refreshChannelState();
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
    this.showError("");
    try {
      const summary = await fn();
      if (summary && summary.id === this.conv.id) this.updateConversation(summary);
    } catch (err) {
      this.showError(err.message);
    }
  }

  updateConversation(summary) {
    const keep = { contact_name: this.conv.contact_name, last_message: this.conv.last_message };
    this.conv = { ...this.conv, ...summary };
    if (!summary.contact_name) this.conv.contact_name = keep.contact_name;
    if (!summary.last_message) this.conv.last_message = keep.last_message;
    this.renderHeader();
    this.refreshChannelState();
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
      this.showError(err.message);
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

  // -- composer -----------------------------------------------------------------------
  buildComposer() {
    const c = this.conv;
    const form = el("form", { class: "composer", "aria-label": "Reply" });
    this.input = el("textarea", { id: "reply-text", rows: "3", "aria-describedby": "compose-hint" });
    this.privateBox = el("input", { type: "checkbox", id: "reply-private" });
    this.channelInfo = el("p", { class: "channel-info", "aria-live": "polite" });
    this.counter = el("span", { class: "segments", "aria-live": "polite" });
    this.error = el("p", { class: "compose-error", role: "alert" });
    this.sendButton = el("button", { type: "submit", class: "primary" }, "Send");
    this.templateBox = el("div", { class: "template", hidden: true });
    this.setTemplates([]);
    const label = el("label", { for: "reply-text", id: "reply-label" }, `Reply by ${channelLabel(c.channel)}`);
    form.append(
      this.channelInfo, label, this.input,
      el("div", { class: "compose-row" },
        el("label", { class: "check" }, this.privateBox, " Private note"),
        this.counter,
        el("span", { id: "compose-hint", class: "muted" }, "Ctrl/⌘+Enter to send"),
        this.sendButton),
      this.templateBox, this.error);
    form.addEventListener("submit", (e) => { e.preventDefault(); this.send(); });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); this.send(); }
    });
    this.privateBox.addEventListener("change", () => {
      form.classList.toggle("is-private", this.privateBox.checked);
      label.textContent = this.privateBox.checked ? "Private note (never sent to the customer)" : `Reply by ${channelLabel(this.conv.channel)}`;
      this.sendButton.textContent = this.privateBox.checked ? "Add note" : "Send";
    });
    const countSegments = debounce(() => this.countSegments(), 250);
    this.input.addEventListener("input", () => {
      if (this.conv.channel === "sms") countSegments();
      const now = Date.now();
      if (!this.privateBox.checked && now - this.typingSentAt > 2500) {
        this.typingSentAt = now;
        this.announce("typing");
      }
    });
    return form;
  }

  insertText(line) {
    const value = this.input.value;
    this.input.value = value ? `${value.replace(/\s*$/, "")}\n${line}` : line;
    this.input.focus();
    this.input.dispatchEvent(new Event("input"));
  }

  focusComposer() { this.input.focus(); }

  async countSegments() {
    const text = this.input.value;
    if (!text) { this.counter.textContent = ""; return; }
    try {
      const info = await api(`/api/v1/compose/segments${query({ text })}`);
      this.counter.textContent = `${info.segments} SMS segment${info.segments === 1 ? "" : "s"} · ${info.encoding} · ${info.remaining} left`;
      this.counter.classList.toggle("warn", info.segments > 1);
    } catch { /* the counter is advisory */ }
  }

  async refreshChannelState() {
    const c = this.conv;
    this.channelInfo.textContent = "";
    this.templateBox.hidden = true;
    const ident = this.contact && this.contact.identities && this.contact.identities.find((i) => i.opted_out && (c.customer_address && (i.value === c.customer_address || i.raw === c.customer_address)));
    if (ident) this.channelInfo.textContent = `${ident.raw || ident.value} has opted out: replies will be refused.`;
    if (c.channel !== "whatsapp") return;
    try {
      const w = await api(`/api/v1/conversations/${c.id}/window`);
      if (w.open) {
        const hours = Math.floor(w.seconds_left / 3600);
        const minutes = Math.floor((w.seconds_left % 3600) / 60);
        this.channelInfo.textContent = `WhatsApp window open: ${hours}h ${minutes}m left for free-form replies.`;
      } else {
        this.channelInfo.textContent = "WhatsApp 24-hour window is closed: only an approved template can be sent.";
        this.setTemplates(w.templates);
        this.templateBox.hidden = false;
      }
    } catch { /* advisory */ }
  }

  showError(text) {
    this.error.textContent = text || "";
  }

  async post(body) {
    this.showError("");
    this.sendButton.disabled = true;
    try {
      const message = await api(`/api/v1/conversations/${this.conv.id}/messages`, { method: "POST", body });
      // The socket may have delivered it (and its "sent" update) already: never go back.
      if (!this.ids.has(message.id)) this.append(message);
      return true;
    } catch (err) {
      if (err.status === 422) this.showError(`Refused: ${err.message}`);
      else if (err.status === 409) this.showError(`Not sent: ${err.message}`);
      else this.showError(err.message);
      if (err.status === 409 && err.body.templates) {
        this.setTemplates(err.body.templates);
        this.templateBox.hidden = false;
      } else if (err.status === 409) this.refreshChannelState();
      return false;
    } finally {
      this.sendButton.disabled = false;
    }
  }

  async send() {
    const text = this.input.value;
    if (!text.trim()) { this.showError("Write something first."); return; }
    if (await this.post({ text, private: this.privateBox.checked })) {
      this.input.value = "";
      this.counter.textContent = "";
    }
  }

  /** The template picker: a list when the server names approved templates, else a name field. */
  setTemplates(templates) {
    const known = Array.isArray(templates) ? templates.filter((t) => t && t.name) : [];
    const vars = el("div", { class: "template-vars" });
    let picker;
    const showVars = () => {
      const t = known.find((x) => x.name === picker.value);
      vars.replaceChildren(...((t && t.variables) || []).map((v, i) => el("label", { class: "inline" },
        `${v} `, el("input", { type: "text", "data-var": v, id: `tvar-${i}` }))));
    };
    if (known.length) {
      picker = el("select", { id: "template-name" }, ...known.map((t) => el("option", { value: t.name }, t.label || t.name)));
      picker.addEventListener("change", showVars);
    } else {
      picker = el("input", { id: "template-name", type: "text", placeholder: "e.g. order_update" });
    }
    this.templateName = picker;
    this.templates = known;
    this.templateBox.replaceChildren(
      el("label", { for: "template-name" }, "Approved template"), picker, vars,
      el("button", { type: "button", onclick: () => this.sendTemplate() }, "Send template"));
    if (known.length) showVars();
  }

  async sendTemplate() {
    const name = this.templateName.value.trim();
    if (!name) { this.showError("Name the approved template to send."); return; }
    const chosen = this.templates.find((t) => t.name === name);
    const variables = {};
    for (const input of this.templateBox.querySelectorAll("input[data-var]")) variables[input.dataset.var] = input.value;
    const template = { name, variables };
    if (chosen && chosen.language) template.language = chosen.language;
    if (await this.post({ text: this.input.value, template }) && !this.templates.length) this.templateName.value = "";
  }
}
