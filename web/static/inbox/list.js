// The conversation list: one button per conversation, newest activity first.
import { ago, el } from "./dom.js";
import { channelBadge } from "./icons.js";

const AUTHOR_PREFIX = { agent: "You/agent: ", bot: "Bot: ", system: "", customer: "" };

/** Does a conversation summary belong in the current view and filters? */
export function matches(conv, { view, status, channel, me }) {
  if (view === "mine" && conv.assignee_id !== me) return false;
  if (view === "unassigned" && conv.assignee_id !== null && conv.assignee_id !== undefined) return false;
  if (view === "bot" && conv.handled_by !== "bot") return false;
  if (status && conv.status !== status) return false;
  if (channel && conv.channel !== channel) return false;
  return true;
}

export function displayName(conv) {
  if (conv.contact_name) return conv.contact_name;
  if (conv.channel === "webchat") return `Web visitor #${conv.contact_id}`;
  return conv.customer_address || `Customer #${conv.contact_id}`;
}

/** Waiting time: since the customer's last message, while the last word is theirs. */
export function waiting(conv, now = Date.now()) {
  const last = conv.last_message;
  if (conv.status === "resolved" || !conv.last_customer_at) return null;
  if (last && last.author !== "customer") return null;
  return ago(conv.last_customer_at, now);
}

export function sortConversations(convs) {
  return [...convs].sort((a, b) => (Date.parse(b.last_activity_at) - Date.parse(a.last_activity_at)) || (b.id - a.id));
}

export function renderList(container, convs, { currentId, onOpen, agents = new Map(), me = null, now = Date.now() }) {
  const items = convs.map((c) => {
    const name = displayName(c);
    const wait = waiting(c, now);
    const last = c.last_message;
    const preview = last ? `${last.private ? "Note: " : (AUTHOR_PREFIX[last.author] ?? "")}${last.text}` : "";
    const unread = c.unread_count > 0
      ? el("span", { class: "unread" }, String(c.unread_count), el("span", { class: "sr-only" }, " unread"))
      : null;
    const assignee = c.assignee_id ? agents.get(c.assignee_id) : null;
    const button = el("button", {
      type: "button", class: "conv", "data-id": c.id,
      "aria-current": c.id === currentId ? "true" : null,
      onclick: () => onOpen(c.id),
    },
    el("span", { class: "conv-top" },
      channelBadge(c.channel),
      el("strong", { class: "conv-name" }, name),
      unread,
      el("span", { class: `conv-time${wait ? " waiting" : ""}`, title: wait ? "Customer waiting" : "Last activity" },
        wait ? `waiting ${wait}` : ago(c.last_activity_at, now))),
    el("span", { class: "conv-meta" },
      el("span", { class: `status st-${c.status}` }, c.status),
      c.handled_by === "bot" ? el("span", { class: "tag bot" }, "bot") : null,
      assignee ? el("span", { class: "assignee" }, `→ ${assignee.id === me ? "you" : assignee.name}`) : null,
      c.subject ? el("span", { class: "conv-subject" }, c.subject) : null),
    el("span", { class: "conv-preview" }, preview));
    return el("li", {}, button);
  });
  container.replaceChildren(...items);
}
