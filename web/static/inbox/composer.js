// The reply box of one conversation: channel state (SMS segments, WhatsApp window and
// templates, opt-out), private notes, Ctrl/Cmd+Enter, "/" for canned responses, and the
// server's refusals shown.
import { api, query } from "./api.js";
import { CannedPicker } from "./canned_picker.js";
import { debounce, el } from "./dom.js";
import { channelLabel } from "./icons.js";

export class Composer {
  constructor(thread) {
    this.thread = thread;
    this.typingSentAt = 0;
    this.form = this.build();
  }

  get conv() { return this.thread.conv; }

  get contact() { return this.thread.contact; }

  build() {
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
    this.canned = new CannedPicker(this.input, {
      onPick: () => { if (this.conv.channel === "sms") this.countSegments(); },
    });
    form.append(
      this.channelInfo, label, el("div", { class: "compose-box" }, this.input, this.canned.list),
      el("div", { class: "compose-row" },
        el("label", { class: "check" }, this.privateBox, " Private note"),
        this.counter,
        el("span", { id: "compose-hint", class: "muted" }, "Ctrl/⌘+Enter to send · / for canned responses"),
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
        this.thread.announce("typing");
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
    // STOP is an SMS rule: the same number stays reachable on WhatsApp.
    const ident = c.channel === "sms" && this.contact && this.contact.identities && this.contact.identities.find((i) => i.opted_out && (c.customer_address && (i.value === c.customer_address || i.raw === c.customer_address)));
    if (ident) this.channelInfo.textContent = `${ident.raw || ident.value} has opted out of SMS: replies will be refused.`;
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
      if (!this.thread.ids.has(message.id)) this.thread.append(message);
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
