// The customer panel: who this is, possible duplicates (merge, undo), their addresses
// (and opt-outs), other conversations, orders.
import { api } from "./api.js";
import { el, safeUrl, when } from "./dom.js";
import { channelBadge } from "./icons.js";

const KIND_LABEL = { phone: "Phone", email: "Email", webchat: "Web chat visitor", whatsapp_user: "WhatsApp" };

function money(amount, currency) {
  if (amount === null || amount === undefined || amount === "") return "";
  const n = Number(amount);
  if (Number.isNaN(n)) return `${amount} ${currency || ""}`.trim();
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "USD" }).format(n);
  } catch {
    return `${n.toFixed(2)} ${currency || ""}`.trim();
  }
}

/** The one line an agent drops into a reply about an order. */
export function orderStatusLine(o) {
  const parts = [`Order ${o.number}`];
  if (o.placed_at) parts.push(`placed ${new Date(o.placed_at).toLocaleDateString()}`);
  let line = `${parts.join(", ")}: ${o.status || "received"}`;
  if (o.fulfillment_status) line += `, fulfilment ${o.fulfillment_status}`;
  if (o.tracking_number || o.tracking_url) {
    line += `. Tracking: ${[o.tracking_number, safeUrl(o.tracking_url)].filter(Boolean).join(" ")}`;
  }
  return `${line}.`;
}

function orderCard(o, onInsert) {
  const tracking = safeUrl(o.tracking_url);
  const items = (o.items || []).map((it) => el("li", {},
    `${it.quantity ?? 1} × ${it.name ?? it.title ?? it.sku ?? "item"}`,
    it.price !== undefined && it.price !== null ? el("span", { class: "muted" }, ` ${money(it.price, o.currency)}`) : null));
  return el("li", { class: "order", "data-order": o.external_id },
    el("div", { class: "order-head" },
      el("strong", {}, `#${String(o.number).replace(/^#/, "")}`),
      el("time", { datetime: o.placed_at || "" }, o.placed_at ? when(o.placed_at) : ""),
      el("span", { class: "order-total" }, money(o.total, o.currency))),
    o.matched_by && o.matched_by !== "contact"
      ? el("p", { class: "order-match muted" }, `matched by ${o.matched_by}: ${o.matched_by === "email" ? o.customer_email : o.customer_phone}`) : null,
    el("div", { class: "order-state" },
      el("span", { class: "tag" }, o.status || "—"),
      o.financial_status ? el("span", { class: "tag" }, o.financial_status) : null,
      el("span", { class: "tag" }, `fulfilment: ${o.fulfillment_status || "unfulfilled"}`)),
    items.length ? el("ul", { class: "order-items", "aria-label": "Items" }, ...items) : null,
    (o.tracking_number || tracking) ? el("p", { class: "tracking" }, "Tracking: ",
      tracking ? el("a", { href: tracking, target: "_blank", rel: "noopener noreferrer" }, o.tracking_number || "track parcel")
        : o.tracking_number) : null,
    el("button", { type: "button", class: "link insert", onclick: () => onInsert(orderStatusLine(o)),
      "aria-label": `Insert status of order ${o.number} into reply` }, "Insert into reply"));
}

// Merges made from this page, by the contact they went into: the "Undo merge" button
// survives the panel's re-renders (every contact.updated event re-renders it).
const recentMerges = new Map();
let renders = 0;

function mergeSection(contact, duplicates, rerender) {
  const status = el("p", { class: "compose-error", role: "alert" });
  const run = async (fn) => {
    status.textContent = "";
    try { await fn(); } catch (err) { status.textContent = err.message; return; }
    rerender();
  };
  const undo = recentMerges.get(contact.id);
  const lines = [];
  if (undo) {
    lines.push(el("p", { class: "merged-note", role: "status" },
      `Merged ${undo.name} into this customer.`,
      el("button", { type: "button", onclick: () => run(async () => {
        try {
          await api(`/api/v1/merges/${undo.record.id}/undo`, { method: "POST" });
        } finally {
          recentMerges.delete(contact.id);
        }
      }) }, "Undo merge")));
  }
  const items = duplicates.map((d) => {
    const name = d.contact.name || (d.contact.identities[0] && (d.contact.identities[0].raw || d.contact.identities[0].value)) || `contact ${d.contact.id}`;
    return el("li", { class: "duplicate" },
      "Possible duplicate: ", el("strong", {}, name), ` (${d.reason})`,
      el("button", { type: "button", "aria-label": `Merge ${name} into this customer`, onclick: () => run(async () => {
        const record = await api(`/api/v1/contacts/${d.contact.id}/merge`, { method: "POST", body: { into: contact.id } });
        recentMerges.set(contact.id, { record, name });
      }) }, "Merge"));
  });
  if (!lines.length && !items.length) return null;
  return el("section", { "aria-label": "Possible duplicates", class: "dup-section" },
    ...lines, items.length ? el("ul", { class: "duplicates" }, ...items) : null, status);
}

export async function renderPanel(container, contactId, options) {
  const { currentId, onOpen, onInsert } = options;
  const render = ++renders;
  container.replaceChildren(el("p", { class: "muted" }, "Loading customer…"));
  let contact, orders, duplicates;
  try {
    [contact, orders, duplicates] = await Promise.all([
      api(`/api/v1/contacts/${contactId}`),
      api(`/api/v1/contacts/${contactId}/orders`).catch(() => ({ items: [], unavailable: true })),
      api(`/api/v1/contacts/${contactId}/duplicates`).catch(() => ({ items: [] })),
    ]);
  } catch (err) {
    if (render === renders) container.replaceChildren(el("p", { class: "compose-error", role: "alert" }, err.message));
    return;
  }
  if (render !== renders) return; // a newer render (another conversation, an event) won
  const merges = mergeSection(contact, duplicates.items || [], () => renderPanel(container, contactId, options));
  const identities = contact.identities.map((i) => el("li", { class: i.opted_out ? "opted-out" : "" },
    el("span", { class: "muted" }, `${KIND_LABEL[i.kind] || i.kind}: `),
    el("span", { class: "ident" }, i.raw || i.value),
    i.opted_out ? el("span", { class: "tag danger" }, "SMS opted out") : null));
  if (contact.claimed_email) {
    // Typed in the web chat, not proven theirs: no orders are looked up for it.
    identities.push(el("li", { class: "claimed" },
      el("span", { class: "muted" }, "Email (typed in chat): "),
      el("span", { class: "ident" }, contact.claimed_email),
      el("span", { class: "tag", title: "Not verified: it may not be this customer's" }, "unverified")));
  }
  const others = (contact.conversations || []).filter((c) => c.id !== currentId).map((c) => el("li", {},
    el("button", { type: "button", class: "link", onclick: () => onOpen(c.id) },
      channelBadge(c.channel), ` ${c.subject || c.status} · ${when(c.last_activity_at)}`)));
  const orderItems = (orders.items || []).map((o) => orderCard(o, onInsert));
  container.replaceChildren(
    el("h2", { id: "panel-name" }, contact.name || "Unnamed customer"),
    ...(merges ? [merges] : []),
    el("section", { "aria-labelledby": "p-ident" },
      el("h3", { id: "p-ident" }, "Addresses"), el("ul", { class: "identities" }, ...identities)),
    el("section", { "aria-labelledby": "p-convs" },
      el("h3", { id: "p-convs" }, "Other conversations"),
      others.length ? el("ul", { class: "others" }, ...others) : el("p", { class: "muted" }, "None.")),
    el("section", { "aria-labelledby": "p-orders", class: "orders-section" },
      el("h3", { id: "p-orders" }, "Recent orders"),
      orderItems.length ? el("ul", { class: "orders" }, ...orderItems)
        : el("p", { class: "muted" }, orders.unavailable ? "Orders are unavailable." : "No orders.")));
}
