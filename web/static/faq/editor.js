// The FAQ editor: entries (list, search, create, edit, disable, delete), per-channel
// preview, "try a message", and the unanswered-question groups. All text goes in
// with textContent (customer messages are never trusted); no inline script or style.

import { api } from "../api.js";

const $ = (id) => document.getElementById(id);

function el(tag, { text, cls, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) if (child) node.append(child);
  return node;
}

function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

const state = { entries: [], current: null, fromGroup: null, search: "" };

// ------------------------------------------------------------------ entries list

async function loadEntries() {
  const q = state.search ? `?q=${encodeURIComponent(state.search)}` : "";
  const data = await api(`/api/v1/faqs${q}`);
  state.entries = data.items;
  renderEntries();
  refreshAlternateTargets();
}

function renderEntries() {
  const list = $("faq-entries");
  list.replaceChildren();
  for (const entry of state.entries) {
    const button = el("button", { cls: "faq-entry-button", attrs: { type: "button", "data-id": String(entry.id) } }, [
      el("span", { text: entry.question, cls: "faq-entry-q" }),
      el("span", {
        cls: "faq-entry-meta muted",
        text: [
          entry.enabled ? null : "disabled",
          entry.tags.length ? entry.tags.join(", ") : null,
          `${entry.auto_answers} answers`,
          entry.handovers_after_answer ? `${entry.handovers_after_answer} unhelpful` : null,
        ].filter(Boolean).join(" · "),
      }),
    ]);
    button.addEventListener("click", () => selectEntry(entry.id));
    const item = el("li", { cls: "faq-entry" + (entry.enabled ? "" : " faq-disabled") }, [button]);
    if (state.current && state.current.id === entry.id) item.setAttribute("aria-current", "true");
    list.append(item);
  }
  $("faq-count").textContent = `${state.entries.length} entr${state.entries.length === 1 ? "y" : "ies"}`
    + (state.search ? ` matching "${state.search}"` : "");
}

// ------------------------------------------------------------------ the form

function channelBoxes() {
  return Array.from(document.querySelectorAll('#faq-form input[name="channel"]'));
}

function fillForm(entry, { title } = {}) {
  $("f-question").value = entry ? entry.question : "";
  $("f-alternates").value = entry ? entry.alternates.join("\n") : "";
  $("f-answer").value = entry ? entry.answer : "";
  $("f-fallback").value = entry && entry.answer_fallback ? entry.answer_fallback : "";
  $("f-tags").value = entry ? entry.tags.join(", ") : "";
  const chosen = new Set(entry ? entry.channels : []);
  for (const box of channelBoxes()) box.checked = chosen.has(box.value);
  $("f-enabled").checked = entry ? entry.enabled !== false : true;
  $("faq-form-title").textContent = title || (state.current ? "Edit entry" : "New entry");
  $("faq-delete").hidden = !state.current;
  $("faq-disable").hidden = !state.current;
  $("faq-disable").textContent = state.current && !state.current.enabled ? "Enable" : "Disable";
  $("faq-errors").replaceChildren();
  $("faq-status").textContent = "";
  const stats = $("faq-stats");
  stats.textContent = state.current
    ? `Answered ${state.current.auto_answers} times automatically; ` +
      `${state.current.handovers_after_answer} times the customer said it did not help; ` +
      `last used: ${when(state.current.last_used_at)}.`
    : "";
  const note = $("faq-from-group");
  note.hidden = !state.fromGroup;
  note.textContent = state.fromGroup
    ? `New entry from ${state.fromGroup.count} unanswered question(s); saving covers them.` : "";
}

function selectEntry(id) {
  const entry = state.entries.find((e) => e.id === id);
  if (!entry) return;
  state.current = entry;
  state.fromGroup = null;
  fillForm(entry);
  renderEntries();
  $("f-question").focus();
}

function newEntry(prefill = null, group = null) {
  state.current = null;
  state.fromGroup = group;
  fillForm(prefill, { title: group ? "New entry from unanswered questions" : "New entry" });
  renderEntries();
  $("f-question").focus();
}

function formBody() {
  const lines = (v) => v.split("\n").map((s) => s.trim()).filter(Boolean);
  return {
    question: $("f-question").value,
    alternates: lines($("f-alternates").value),
    answer: $("f-answer").value,
    answer_fallback: $("f-fallback").value.trim() || null,
    tags: $("f-tags").value.split(",").map((s) => s.trim()).filter(Boolean),
    channels: channelBoxes().filter((b) => b.checked).map((b) => b.value),
    enabled: $("f-enabled").checked,
  };
}

function showErrors(err) {
  const list = $("faq-errors");
  list.replaceChildren();
  const reasons = (err.body && err.body.reasons) || [err.message];
  for (const reason of reasons) list.append(el("li", { text: reason }));
}

async function save(event) {
  event.preventDefault();
  const body = formBody();
  $("faq-save").disabled = true;
  try {
    let saved;
    if (state.fromGroup) {
      saved = await api(`/api/v1/faq/unanswered/${state.fromGroup.id}/create-entry`, { method: "POST", body });
    } else if (state.current) {
      saved = await api(`/api/v1/faqs/${state.current.id}`, { method: "PUT", body });
    } else {
      saved = await api("/api/v1/faqs", { method: "POST", body });
    }
    state.fromGroup = null;
    await loadEntries();
    state.current = state.entries.find((e) => e.id === saved.id) || saved;
    fillForm(state.current);
    renderEntries();
    $("faq-status").textContent = "Saved.";
    await loadUnanswered();
  } catch (err) {
    showErrors(err);
  } finally {
    $("faq-save").disabled = false;
  }
}

async function toggleEnabled() {
  if (!state.current) return;
  try {
    const saved = await api(`/api/v1/faqs/${state.current.id}`,
      { method: "PUT", body: { enabled: !state.current.enabled } });
    await loadEntries();
    state.current = state.entries.find((e) => e.id === saved.id) || saved;
    fillForm(state.current);
    renderEntries();
    $("faq-status").textContent = saved.enabled ? "Enabled." : "Disabled: the bot will not use it.";
  } catch (err) {
    showErrors(err);
  }
}

async function remove() {
  if (!state.current) return;
  if (!window.confirm(`Delete "${state.current.question}"? This cannot be undone.`)) return;
  try {
    await api(`/api/v1/faqs/${state.current.id}`, { method: "DELETE" });
    state.current = null;
    await loadEntries();
    newEntry();
    $("faq-status").textContent = "Deleted.";
  } catch (err) {
    showErrors(err);
  }
}

// ------------------------------------------------------------------ preview

async function preview() {
  const body = { channel: $("p-channel").value, answer: $("f-answer").value,
                 answer_fallback: $("f-fallback").value.trim() || null };
  const path = state.current ? `/api/v1/faqs/${state.current.id}/preview` : "/api/v1/faq/preview";
  const text = $("p-text"), html = $("p-html"), fallback = $("p-fallback"), note = $("p-note");
  try {
    const out = await api(path, { method: "POST", body });
    note.textContent = out.personal
      ? `Personal answer, shown with a sample order (#${out.sample_order.number}, ${out.sample_order.status}).`
      : "";
    text.textContent = out.text === null ? "(this template cannot be filled)" : out.text;
    html.hidden = !out.html;
    html.textContent = out.html ? `HTML part:\n${out.html}` : "";
    fallback.hidden = !out.fallback;
    fallback.textContent = out.fallback ? `Without an order:\n${out.fallback.text}` : "";
  } catch (err) {
    note.textContent = err.message;
    text.textContent = "";
    html.hidden = true;
    fallback.hidden = true;
  }
}

// ------------------------------------------------------------------ try a message

async function tryMessage(event) {
  event.preventDefault();
  const out = $("try-result");
  const text = $("try-text").value;
  if (!text.trim()) return;
  try {
    const res = await api("/api/v1/faq/match", { method: "POST", body: { text, channel: $("try-channel").value } });
    const verdict = el("p", {
      cls: res.would_answer ? "faq-yes" : "faq-no",
      text: res.would_answer ? "The bot would answer." : `The bot would not answer: ${res.reason_text}.`,
    });
    const best = res.entry
      ? el("p", {}, [el("span", { text: "Best match: " }), el("strong", { text: res.entry.question }),
          el("span", { text: ` (confidence ${(res.confidence * 100).toFixed(1)} %, needs ${(res.threshold * 100).toFixed(1)} %)` })])
      : el("p", { text: "No entry matches.", cls: "muted" });
    const others = el("ol", { cls: "faq-candidates" });
    for (const c of res.candidates.slice(1)) {
      others.append(el("li", { text: `${c.question} (${(c.confidence * 100).toFixed(1)} %)` }));
    }
    out.replaceChildren(verdict, best);
    if (res.personal) {
      out.append(el("p", { cls: "muted", text: "A personal answer: customers without an order get the fallback (or a person)." }));
    }
    if (res.candidates.length > 1) out.append(el("p", { text: "Runners-up:", cls: "muted" }), others);
    if (res.entry) {
      const open = el("button", { text: "Open this entry", cls: "link", attrs: { type: "button" } });
      open.addEventListener("click", () => selectEntry(res.entry.id));
      out.append(open);
    }
  } catch (err) {
    out.replaceChildren(el("p", { text: err.message, cls: "faq-no" }));
  }
}

// ------------------------------------------------------------------ unanswered

function refreshAlternateTargets() {
  for (const select of document.querySelectorAll("select.faq-target")) {
    const keep = select.value;
    fillTargets(select, keep);
  }
}

function fillTargets(select, selected) {
  select.replaceChildren(el("option", { text: "choose an entry…", attrs: { value: "" } }));
  for (const entry of state.entries) {
    const option = el("option", { text: entry.question, attrs: { value: String(entry.id) } });
    if (String(entry.id) === String(selected)) option.selected = true;
    select.append(option);
  }
}

function renderGroup(group) {
  const item = el("li", { cls: "faq-group", attrs: { "data-group": String(group.id) } });
  const reasons = Object.entries(group.reasons).map(([r, n]) => `${r.replaceAll("_", " ")} ×${n}`).join(", ");
  item.append(
    el("p", { cls: "faq-group-head" }, [
      el("strong", { text: `${group.count}× ` }), el("span", { text: group.text, cls: "faq-group-text" }),
    ]),
    el("p", { cls: "muted", text: reasons }),
  );
  const questions = el("ul", { cls: "faq-group-questions" });
  for (const q of group.questions) {
    questions.append(el("li", { text: `${q.text} — ${when(q.created_at)}` }));
  }
  const details = el("details", {}, [el("summary", { text: `${group.questions.length} message(s)` }), questions]);
  item.append(details);

  const create = el("button", { text: "Create an entry from this group", attrs: { type: "button" } });
  create.addEventListener("click", () => {
    const texts = [...new Set(group.questions.map((q) => q.text.trim()))];
    newEntry({ question: texts[0], alternates: texts.slice(1), answer: "", answer_fallback: null,
               tags: [], channels: [], enabled: true }, { id: group.id, count: group.count });
    $("f-answer").focus();
  });

  const label = el("label", { text: "Add as an alternate of ", attrs: { for: `target-${group.id}` } });
  const select = el("select", { cls: "faq-target", attrs: { id: `target-${group.id}` } });
  fillTargets(select, group.suggested_entry ? group.suggested_entry.id : "");
  const add = el("button", { text: "Add", attrs: { type: "button" } });
  const status = el("span", { cls: "muted", attrs: { role: "status" } });
  add.addEventListener("click", async () => {
    if (!select.value) { status.textContent = "Choose an entry first."; return; }
    try {
      const res = await api(`/api/v1/faq/unanswered/${group.id}/add-alternate`,
        { method: "POST", body: { entry_id: Number(select.value) } });
      status.textContent = `Added ${res.added.length} phrasing(s).`;
      await loadEntries();
      await loadUnanswered();
    } catch (err) {
      status.textContent = err.message;
    }
  });
  const dismiss = el("button", { text: "Dismiss", cls: "link", attrs: { type: "button" } });
  dismiss.addEventListener("click", async () => {
    try {
      await api(`/api/v1/faq/unanswered/${group.id}`, { method: "DELETE" });
      await loadUnanswered();
    } catch (err) {
      status.textContent = err.message;
    }
  });
  item.append(el("div", { cls: "faq-group-actions" }, [create, el("span", { cls: "faq-row" }, [label, select, add]), dismiss, status]));
  return item;
}

async function loadUnanswered() {
  const list = $("un-groups");
  try {
    const data = await api("/api/v1/faq/unanswered");
    list.replaceChildren(...data.groups.map(renderGroup));
    $("un-empty").hidden = data.groups.length > 0;
  } catch (err) {
    list.replaceChildren(el("li", { text: err.message, cls: "faq-no" }));
  }
}

// ------------------------------------------------------------------ wiring

let searchTimer = null;
$("faq-q").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { state.search = $("faq-q").value.trim(); loadEntries(); }, 200);
});
$("faq-search").addEventListener("submit", (e) => { e.preventDefault(); state.search = $("faq-q").value.trim(); loadEntries(); });
$("faq-new").addEventListener("click", () => newEntry());
$("faq-form").addEventListener("submit", save);
$("faq-disable").addEventListener("click", toggleEnabled);
$("faq-delete").addEventListener("click", remove);
$("p-go").addEventListener("click", preview);
$("try-form").addEventListener("submit", tryMessage);
$("un-refresh").addEventListener("click", loadUnanswered);

newEntry();
loadEntries().then(loadUnanswered).catch((err) => { $("faq-count").textContent = err.message; });
