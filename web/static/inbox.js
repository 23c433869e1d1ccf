// Minimal inbox: list conversations, open one, reply; live through /ws/agent.
const root = document.getElementById("inbox");
const csrf = root.dataset.csrf;
const list = document.getElementById("list");
const thread = document.getElementById("thread");
let current = null;
let lastSeq = 0;

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path, options = {}) {
  const res = await fetch(path, { headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, ...options });
  return res.json();
}

async function loadList() {
  const data = await api("/api/v1/conversations");
  list.replaceChildren(...data.items.map((c) => {
    const item = el("button", { class: "conv", "data-id": c.id });
    item.append(el("strong", {}, c.contact_name || c.customer_address || "Customer"), el("span", {}, ` ${c.channel} · ${c.status}`),
      el("div", {}, c.last_message ? c.last_message.text : ""));
    item.addEventListener("click", () => openConversation(c.id));
    return item;
  }));
}

async function openConversation(id) {
  current = id;
  const data = await api(`/api/v1/conversations/${id}`);
  const form = el("form", { id: "composer" });
  const input = el("textarea", { name: "text", "aria-label": "Reply" });
  form.append(input, el("button", { type: "submit" }, "Send"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await api(`/api/v1/conversations/${id}/messages`, { method: "POST", body: JSON.stringify({ text: input.value }) });
    input.value = "";
  });
  const messages = el("div", { id: "messages" });
  for (const m of data.messages) messages.append(renderMessage(m));
  thread.replaceChildren(el("h2", {}, data.contact?.name || data.conversation.customer_address || "Customer"), messages, form);
}

function renderMessage(m) {
  const node = el("div", { class: `msg ${m.author}`, "data-id": m.id });
  node.append(el("small", {}, `${m.author} · ${m.delivery_status || ""}`), el("p", {}, m.text));
  return node;
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/agent${lastSeq ? `?since=${lastSeq}` : ""}`);
  ws.onmessage = (e) => {
    const ev = JSON.parse(e.data);
    if (ev.seq) lastSeq = ev.seq;
    if (ev.type === "hello" && !lastSeq) lastSeq = ev.seq;
    if (ev.type === "message.created") {
      loadList();
      if (ev.conversation_id === current && !document.querySelector(`[data-id="${ev.message.id}"].msg`)) {
        document.getElementById("messages")?.append(renderMessage(ev.message));
      }
    }
  };
  ws.onclose = () => setTimeout(connect, 1000);
}

loadList();
connect();
