// One message of a thread, as agents see it. Customer text goes in as textContent only;
// customer HTML only ever inside a sandboxed frame.
import { api } from "./api.js";
import { el, safeUrl, when } from "./dom.js";
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
    const retry = el("button", { type: "button", class: "link retry" }, "Retry");
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      try {
        await api(`/api/v1/messages/${encodeURIComponent(m.id)}/retry`, { method: "POST" });
        retry.textContent = "Retrying…";  // the message.updated event redraws the ticks
      } catch (err) {
        retry.disabled = false;
        retry.textContent = `Retry (${err.message})`;
      }
    });
    return el("span", { class: "ticks failed", role: "note" },
      `⚠ ${status}${reason ? `: ${reason}` : ""} `, retry);
  }
  const [glyph, label] = TICKS[status] || ["", status];
  return el("span", { class: `ticks ${status}`, title: label },
    el("span", { "aria-hidden": "true" }, glyph), el("span", { class: "tick-label" }, ` ${label}`));
}

function attachmentList(m) {
  if (!m.attachments || !m.attachments.length) return null;
  const items = m.attachments.map((a, i) => {
    // One route serves every kind: our stored bytes, Meta media ids, Twilio media.
    const href = a.file_id || (a.url && (a.url.startsWith("meta-media:") || safeUrl(a.url)))
      ? `/api/v1/messages/${encodeURIComponent(m.id)}/attachments/${i}` : null;
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
      wrap.querySelector(".load-remote")?.remove();
      button.textContent = "Show original formatting";
      button.setAttribute("aria-expanded", "false");
      return;
    }
    // Sanitised on arrival, and still shown only in a frame with every sandbox flag off:
    // no scripts, no forms, no same-origin access.
    frame = el("iframe", { sandbox: "", title: "Original email formatting", class: "html-frame", referrerpolicy: "no-referrer" });
    frame.srcdoc = m.html;
    wrap.append(frame);
    // Remote images arrive disarmed (data-remote-src, so senders can't track opens);
    // they load only when the agent asks.
    if (m.html.includes("data-remote-src")) {
      const load = el("button", { type: "button", class: "link load-remote" }, "Load remote images");
      load.addEventListener("click", () => {
        const doc = new DOMParser().parseFromString(m.html, "text/html");  // inert: nothing runs
        for (const img of doc.querySelectorAll("img[data-remote-src]")) {
          const url = img.getAttribute("data-remote-src") || "";
          if (/^https?:\/\//i.test(url)) img.setAttribute("src", url);
        }
        if (frame) frame.srcdoc = doc.documentElement.outerHTML;
        load.remove();
      });
      wrap.append(load);
    }
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
  // Why the bot said it: the FAQ entry it matched and how sure the matcher was.
  const why = m.author === "bot" && meta.faq_question
    ? el("div", { class: "msg-why" },
      `FAQ: ${meta.faq_question}` +
      (typeof meta.confidence === "number" ? ` · confidence ${Math.round(meta.confidence * 100)}%` : ""))
    : null;
  return el("li", { class: classes.join(" "), "data-id": m.id },
    head, why, subject,
    el("div", { class: "msg-text" }, m.text || (m.html ? "(formatted message)" : "")),
    quoted, htmlToggle(m), attachmentList(m),
    el("div", { class: "msg-foot" }, delivery(m)));
}
