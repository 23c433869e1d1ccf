// The composer's "/" menu: typing "/word" at the start of a word lists the canned
// responses matching "word"; arrow keys move, Enter or Tab picks, Escape closes. The
// pick replaces "/word" with the response's text. A listbox tied to the textarea
// (aria-activedescendant), so screen readers follow the highlighted option.
import { api, query } from "./api.js";
import { el } from "./dom.js";

const TRIGGER = /(^|\s)\/([\w.-]*)$/;
let seq = 0;

export class CannedPicker {
  constructor(input, { onPick } = {}) {
    this.input = input;
    this.onPick = onPick || (() => {});
    this.items = [];
    this.active = -1;
    this.match = null; // {start, end} of "/word" in the textarea
    this.request = 0;
    this.id = `canned-list-${++seq}`;
    this.list = el("ul", { id: this.id, class: "canned-menu", role: "listbox", "aria-label": "Canned responses", hidden: true });
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", this.id);
    input.setAttribute("aria-expanded", "false");
    input.addEventListener("input", () => this.update());
    input.addEventListener("click", () => this.update());
    input.addEventListener("keydown", (e) => this.onKey(e), true);
    input.addEventListener("blur", () => setTimeout(() => this.close(), 150));
  }

  get open() { return !this.list.hidden; }

  /** Find "/word" right before the caret and (re)load the matching responses. */
  async update() {
    const caret = this.input.selectionStart;
    if (caret !== this.input.selectionEnd) { this.close(); return; }
    const m = TRIGGER.exec(this.input.value.slice(0, caret));
    if (!m) { this.close(); return; }
    const word = m[2];
    this.match = { start: caret - word.length - 1, end: caret };
    const request = ++this.request;
    let items = [];
    try {
      items = (await api(`/api/v1/canned${query({ q: word, limit: 8 })}`)).items;
    } catch { /* the menu is a convenience; typing goes on */ }
    if (request !== this.request) return; // a later keystroke asked again
    this.show(items);
  }

  show(items) {
    this.items = items;
    this.active = items.length ? 0 : -1;
    if (!items.length) {
      this.list.replaceChildren(el("li", { class: "canned-empty muted", role: "presentation" }, "No canned response matches."));
    } else {
      this.list.replaceChildren(...items.map((c, i) => el("li", {
        id: `${this.id}-${i}`, role: "option", class: "canned-option", "aria-selected": "false",
        onmousedown: (e) => { e.preventDefault(); this.pick(i); },
      }, el("span", { class: "canned-shortcut" }, `/${c.shortcut}`), " ",
      el("span", { class: "canned-title" }, c.title),
      el("span", { class: "canned-preview muted" }, c.text.length > 80 ? `${c.text.slice(0, 80)}…` : c.text))));
    }
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.highlight();
  }

  highlight() {
    [...this.list.querySelectorAll("[role=option]")].forEach((node, i) => {
      node.setAttribute("aria-selected", String(i === this.active));
      if (i === this.active) node.scrollIntoView({ block: "nearest" });
    });
    if (this.active >= 0) this.input.setAttribute("aria-activedescendant", `${this.id}-${this.active}`);
    else this.input.removeAttribute("aria-activedescendant");
  }

  close() {
    this.request++;
    this.list.hidden = true;
    this.items = [];
    this.active = -1;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  onKey(e) {
    if (!this.open) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (!this.items.length) return;
      e.preventDefault();
      const step = e.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.items.length) % this.items.length;
      this.highlight();
    } else if ((e.key === "Enter" || e.key === "Tab") && !e.ctrlKey && !e.metaKey && !e.shiftKey && this.active >= 0) {
      e.preventDefault();
      e.stopImmediatePropagation();
      this.pick(this.active);
    } else if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      this.close();
    }
  }

  /** Replace "/word" with the chosen response's text; the caret goes after it. */
  pick(index) {
    const chosen = this.items[index];
    if (!chosen || !this.match) return;
    const { start, end } = this.match;
    const value = this.input.value;
    this.input.value = value.slice(0, start) + chosen.text + value.slice(end);
    const caret = start + chosen.text.length;
    this.close();
    this.input.focus();
    this.input.setSelectionRange(caret, caret);
    this.onPick(chosen);
  }
}
