// Web-chat widget placeholder: the full widget comes with the inbox UI issue.
(function () {
  const script = document.currentScript;
  const base = new URL(script.src).origin.replace(/^http/, "ws");
  const key = "inbox_visitor_token";
  const ws = new WebSocket(`${base}/ws/chat${localStorage.getItem(key) ? `?token=${encodeURIComponent(localStorage.getItem(key))}` : ""}`);
  ws.onmessage = (e) => {
    const frame = JSON.parse(e.data);
    if (frame.type === "welcome") localStorage.setItem(key, frame.token);
  };
  window.inboxChat = { send: (text) => ws.send(JSON.stringify({ type: "message", text, client_id: crypto.randomUUID() })) };
})();
