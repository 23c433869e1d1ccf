// Channel badges: a tiny inline SVG glyph (built with DOM calls) plus a text label.
import { el } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const LABELS = { sms: "SMS", whatsapp: "WhatsApp", email: "Email", webchat: "Web chat" };
const PATHS = {
  sms: "M3 4h18v12H8l-5 4z",
  whatsapp: "M12 2a10 10 0 0 0-8.6 15.1L2 22l5-1.3A10 10 0 1 0 12 2z",
  email: "M2 5h20v14H2zM2 5l10 8 10-8",
  webchat: "M4 4h16v11H9l-5 4zM8 9h8M8 12h5",
};

export function channelLabel(channel) {
  return LABELS[channel] || channel;
}

export function channelBadge(channel) {
  const badge = el("span", { class: `badge ch-${channel}`, title: channelLabel(channel) });
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(NS, "path");
  path.setAttribute("d", PATHS[channel] || PATHS.webchat);
  svg.append(path);
  badge.append(svg, el("span", { class: "badge-text" }, channelLabel(channel)));
  return badge;
}
