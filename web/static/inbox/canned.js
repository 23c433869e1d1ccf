// The admins' page of canned responses (/canned): list and search, create, edit, delete.
// Text goes in with textContent only; the server's reasons are shown as they come.
import { api } from "../api.js";
import { debounce, el } from "./dom.js";

const $ = (id) => document.getElementById(id);
const state = { items: [], editing: null };

async function load() {
  const q = $("canned-q").value.trim();
  const data = await api(`/api/v1/canned?limit=200${q ? `&q=${encodeURIComponent(q)}` : ""}`);
  state.items = data.items;
  render();
}

function render() {
  $("canned-count").textContent = `${state.items.length} canned response${state.items.length === 1 ? "" : "s"}`;
  $("canned-items").replaceChildren(...state.items.map((c) => el("li", { "data-id": c.id },
    el("div", { class: "canned-actions" },
      el("strong", { class: "canned-shortcut" }, `/${c.shortcut}`),
      el("span", {}, c.title),
      el("button", { type: "button", class: "link", onclick: () => edit(c), "aria-label": `Edit /${c.shortcut}` }, "Edit"),
      el("button", { type: "button", class: "link", onclick: () => remove(c), "aria-label": `Delete /${c.shortcut}` }, "Delete")),
    el("p", { class: "canned-text" }, c.text))));
}

function edit(c) {
  state.editing = c;
  $("canned-form-h").textContent = c ? `Edit /${c.shortcut}` : "New canned response";
  $("c-shortcut").value = c ? c.shortcut : "";
  $("c-title").value = c ? c.title : "";
  $("c-text").value = c ? c.text : "";
  $("c-errors").replaceChildren();
  $("c-status").textContent = "";
  $("c-shortcut").focus();
}

async function remove(c) {
  // Two clicks instead of confirm(): no modal dialogs on our pages.
  const button = document.querySelector(`li[data-id="${c.id}"] button[aria-label="Delete /${c.shortcut}"]`);
  if (button && button.dataset.armed !== "1") {
    button.dataset.armed = "1";
    button.textContent = "Really delete?";
    return;
  }
  try {
    await api(`/api/v1/canned/${c.id}`, { method: "DELETE" });
    if (state.editing && state.editing.id === c.id) edit(null);
    $("c-status").textContent = `Deleted /${c.shortcut}.`;
  } catch (err) {
    $("c-status").textContent = err.message;
  }
  await load();
}

async function save(event) {
  event.preventDefault();
  const body = { shortcut: $("c-shortcut").value, title: $("c-title").value, text: $("c-text").value };
  $("c-save").disabled = true;
  $("c-errors").replaceChildren();
  try {
    const saved = state.editing
      ? await api(`/api/v1/canned/${state.editing.id}`, { method: "PUT", body })
      : await api("/api/v1/canned", { method: "POST", body });
    await load();
    edit(null);
    $("c-status").textContent = `Saved /${saved.shortcut}.`;
  } catch (err) {
    $("c-errors").replaceChildren(...err.reasons.map((r) => el("li", {}, r)));
  } finally {
    $("c-save").disabled = false;
  }
}

$("canned-form").addEventListener("submit", save);
$("c-new").addEventListener("click", () => edit(null));
$("canned-search").addEventListener("submit", (e) => e.preventDefault());
$("canned-q").addEventListener("input", debounce(load, 200));
load().catch((err) => { $("canned-count").textContent = err.message; });
