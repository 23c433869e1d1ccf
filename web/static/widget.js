// Omnichannel Inbox web-chat widget. One tag on the shop's page:
//   <script src="https://support.example/widget.js" data-title="Questions? Ask us" defer></script>
// Options (data-*): title, email-after (seconds without an answer before asking for an
// email, default 60), email + email-signature (a signed-in customer's address and the
// shop's hex HMAC-SHA256 of it with INBOX_WEBCHAT_IDENTITY_SECRET: the chat then joins
// that customer's profile; an address typed in the chat is only a claim). Speaks the /ws/chat protocol (README); the visitor token lives in
// localStorage so a reload resumes the conversation. No inline styles, no innerHTML:
// everything is styled by /static/widget.css and filled in with textContent.
(function () {
  "use strict";
  if (window.inboxChat) return;
  const script = document.currentScript;
  if (!script) return;
  const origin = new URL(script.src, location.href).origin;
  const wsUrl = origin.replace(/^http/, "ws") + "/ws/chat";
  const title = script.dataset.title || "Chat with us";
  const emailAfterMs = Math.max(1, Number(script.dataset.emailAfter || 60)) * 1000;
  let signedIdentity = script.dataset.email && script.dataset.emailSignature
    ? { type: "identify", email: script.dataset.email, signature: script.dataset.emailSignature }
    : null;
  const TOKEN_KEY = "inbox_visitor_token";
  const EMAIL_KEY = "inbox_visitor_email";

  function store(key, value) {
    try { if (value === null) localStorage.removeItem(key); else localStorage.setItem(key, value); } catch (e) { /* private mode */ }
  }
  function load(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const key in attrs || {}) {
      if (key === "class") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function uid() {
    return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));
  }

  const css = el("link", { rel: "stylesheet", href: origin + "/static/widget.css" });
  document.head.appendChild(css);

  // -- DOM ----------------------------------------------------------------------------
  const root = el("div", { class: "oi-widget" });
  const launcher = el("button", { type: "button", class: "oi-launcher", "aria-expanded": "false", "aria-controls": "oi-panel" });
  launcher.appendChild(el("span", { class: "oi-launcher-text" }, title));
  const dot = el("span", { class: "oi-dot", "aria-label": "new reply" });
  dot.hidden = true;
  launcher.appendChild(dot);
  const panel = el("section", { class: "oi-panel", id: "oi-panel", role: "dialog", "aria-label": title });
  panel.hidden = true;
  const head = el("header", { class: "oi-head" });
  head.appendChild(el("h2", { class: "oi-title" }, title));
  const close = el("button", { type: "button", class: "oi-close", "aria-label": "Close chat" }, "×");
  head.appendChild(close);
  const list = el("ol", { class: "oi-messages", "aria-live": "polite", "aria-label": "Messages" });
  const hello = el("p", { class: "oi-hello" }, "Hi! Ask us anything: a person or our assistant will answer here.");
  const typing = el("p", { class: "oi-typing", "aria-live": "polite" });
  const emailForm = el("form", { class: "oi-email" });
  emailForm.hidden = true;
  emailForm.appendChild(el("label", { for: "oi-email-input" }, "Nobody has answered yet. Leave your email and we will reply there too."));
  const emailRow = el("div", { class: "oi-row" });
  const emailInput = el("input", { type: "email", id: "oi-email-input", required: "", autocomplete: "email", placeholder: "you@example.com" });
  emailRow.appendChild(emailInput);
  emailRow.appendChild(el("button", { type: "submit" }, "Save"));
  emailForm.appendChild(emailRow);
  const emailThanks = el("p", { class: "oi-thanks", "aria-live": "polite" });
  const form = el("form", { class: "oi-compose" });
  form.appendChild(el("label", { for: "oi-text", class: "oi-sr" }, "Your message"));
  const input = el("textarea", { id: "oi-text", rows: "2", placeholder: "Type your message…", maxlength: "5000" });
  const send = el("button", { type: "submit", class: "oi-send" }, "Send");
  const row = el("div", { class: "oi-row" });
  row.appendChild(input);
  row.appendChild(send);
  form.appendChild(row);
  const status = el("p", { class: "oi-status", "aria-live": "polite" });
  for (const part of [head, hello, list, typing, emailForm, emailThanks, form, status]) panel.appendChild(part);
  root.appendChild(panel);
  root.appendChild(launcher);
  (document.body || document.documentElement).appendChild(root);

  // -- state --------------------------------------------------------------------------
  let ws = null;
  let retry = 0;
  let connected = false;
  const seen = new Set();
  const queue = []; // frames typed while offline, sent on the next welcome
  let waitTimer = null;
  let typingTimer = null;
  let typingSentAt = 0;

  const AUTHOR = { customer: "You", agent: "Support", bot: "Assistant", system: "Support" };

  function render(m) {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    const item = el("li", { class: "oi-msg oi-" + (m.author === "customer" ? "me" : "them") + " oi-a-" + m.author, "data-id": String(m.id) });
    item.appendChild(el("span", { class: "oi-author" }, m.author === "agent" && m.author_name ? m.author_name : (AUTHOR[m.author] || "Support")));
    item.appendChild(el("span", { class: "oi-text" }, m.text || ""));
    for (const att of m.attachments || []) {
      if (att && typeof att.url === "string" && /^https?:\/\//i.test(att.url)) {
        const a = el("a", { href: att.url, target: "_blank", rel: "noopener noreferrer", class: "oi-att" }, att.filename || "attachment");
        item.appendChild(a);
      }
    }
    hello.hidden = true;
    list.appendChild(item);
    item.scrollIntoView && item.scrollIntoView({ block: "end" });
  }

  function answered() {
    clearTimeout(waitTimer);
    waitTimer = null;
    emailForm.hidden = true;
  }

  function startWaiting(sinceMs) {
    if (load(EMAIL_KEY) || waitTimer) return;
    const left = Math.max(0, emailAfterMs - (Date.now() - sinceMs));
    waitTimer = setTimeout(function () {
      waitTimer = null;
      if (!load(EMAIL_KEY)) emailForm.hidden = false;
    }, left);
  }

  function onMessage(m) {
    render(m);
    if (m.author === "customer") {
      startWaiting(Date.parse(m.created_at) || Date.now());
    } else {
      answered();
      typing.textContent = "";
      if (panel.hidden) dot.hidden = false;
    }
  }

  function setStatus(text) { status.textContent = text; }

  function connect() {
    const token = load(TOKEN_KEY);
    const socket = new WebSocket(wsUrl + (token ? "?token=" + encodeURIComponent(token) : ""));
    ws = socket;
    socket.addEventListener("message", function (e) {
      let frame;
      try { frame = JSON.parse(e.data); } catch (err) { return; }
      if (frame.type === "welcome") {
        connected = true;
        retry = 0;
        setStatus("");
        store(TOKEN_KEY, frame.token);
        const history = frame.messages || [];
        for (const m of history) render(m);
        const last = history[history.length - 1];
        if (last && last.author === "customer") startWaiting(Date.parse(last.created_at) || Date.now());
        if (signedIdentity) socket.send(JSON.stringify(signedIdentity));
        while (queue.length) socket.send(JSON.stringify(queue.shift()));
      } else if (frame.type === "message" && frame.message) {
        onMessage(frame.message);
      } else if (frame.type === "typing") {
        typing.textContent = (frame.name || "Support") + " is typing…";
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.textContent = ""; }, 5000);
      } else if (frame.type === "error") {
        setStatus(frame.detail || "Something went wrong.");
      }
    });
    socket.addEventListener("close", function () {
      if (ws !== socket) return;
      connected = false;
      ws = null;
      setStatus("Reconnecting…");
      const delay = Math.min(15000, 500 * Math.pow(2, retry)) * (0.8 + Math.random() * 0.4);
      retry += 1;
      setTimeout(connect, delay);
    });
  }

  function sendFrame(frame) {
    if (ws && connected && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
    else if (frame.type !== "typing") queue.push(frame);
  }

  // -- behaviour ----------------------------------------------------------------------
  function open(show) {
    panel.hidden = !show;
    launcher.setAttribute("aria-expanded", String(show));
    root.classList.toggle("oi-open", show);
    if (show) {
      dot.hidden = true;
      input.focus();
    } else {
      launcher.focus();
    }
  }
  launcher.addEventListener("click", function () { open(panel.hidden); });
  close.addEventListener("click", function () { open(false); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") open(false); });

  function submit() {
    const text = input.value.trim();
    if (!text) return;
    sendFrame({ type: "message", text: text, client_id: uid() });
    input.value = "";
  }
  form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); }
  });
  input.addEventListener("input", function () {
    const now = Date.now();
    if (now - typingSentAt > 2500) { typingSentAt = now; sendFrame({ type: "typing" }); }
  });
  emailForm.addEventListener("submit", function (e) {
    e.preventDefault();
    const email = emailInput.value.trim();
    if (!email || !emailInput.checkValidity()) return;
    sendFrame({ type: "identify", email: email });
    store(EMAIL_KEY, email);
    emailForm.hidden = true;
    emailThanks.textContent = "Thanks! We will also reply to " + email + ".";
  });

  window.inboxChat = {
    open: function () { open(true); },
    close: function () { open(false); },
    send: function (text) { sendFrame({ type: "message", text: String(text), client_id: uid() }); },
    identify: function (email, signature) {
      signedIdentity = { type: "identify", email: String(email), signature: String(signature) };
      sendFrame(signedIdentity);
    },
  };
  connect();
})();
