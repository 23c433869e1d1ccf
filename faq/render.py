"""FAQ answers as each channel shows them, and personal answers from an order (pure).

Editors write answers in a small Markdown subset: ``**bold**``, ``*italic*`` /
``_italic_``, ``[text](https://...)`` links and ``- `` bullet lines. Per channel:

    sms       plain text: markers removed, links as "text (url)"
    webchat   plain text, like SMS (the widget shows text, never HTML)
    whatsapp  WhatsApp's own markup: *bold*, _italic_; links as "text (url)"
    email     the plain text above plus simple HTML (<p>, <br>, <ul>, <strong>, <em>, <a>)

An answer may also be a Jinja2 template over the customer's latest order
(``{{ order.number }}``, ``{{ order.status }}``, ``{{ order.tracking_url }}``),
evaluated in Jinja2's sandbox: an editor's template cannot reach Python internals.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["Rendered", "render", "template_problem", "uses_order", "personalise", "SAMPLE_ORDER"]

# The only variable an answer template may use.
TEMPLATE_VARIABLES = frozenset({"order"})
# A personal answer longer than this is cut: an SMS is at most 10 segments in practice
# and an answer is a chat line, not a document.
MAX_PERSONAL_CHARS = 4000
# What the editor's preview fills a personal answer with.
SAMPLE_ORDER: dict[str, Any] = {
    "number": "10234", "status": "shipped",
    "tracking_url": "https://track.example/10234", "total": "59.90",
}

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True)

_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?://|mailto:)[^\s)]+)\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"
                     r"|(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])")
_BULLET = re.compile(r"^\s*[-*•]\s+(.*)$")


@dataclass(frozen=True, slots=True)
class Rendered:
    """An answer ready for one channel: text always, HTML for email only."""

    channel: str
    text: str
    html: str | None = None


def _group(m: re.Match[str]) -> str:
    return m.group(1) if m.group(1) is not None else m.group(2)


def _link_text(m: re.Match[str]) -> str:
    label, url = m.group(1), m.group(2)
    shown = url[7:] if url.startswith("mailto:") else url
    return shown if label.strip() == shown else f"{label} ({shown})"


def _plain(source: str) -> str:
    text = _LINK.sub(_link_text, source)
    text = _BOLD.sub(_group, text)
    text = _ITALIC.sub(_group, text)
    lines = [("- " + b.group(1)) if (b := _BULLET.match(line)) else line
             for line in text.splitlines()]
    return "\n".join(lines).strip()


def _whatsapp(source: str) -> str:
    # WhatsApp: *bold*, _italic_. Bold goes through a placeholder so the italic rule
    # does not read the new single stars as italics.
    text = _LINK.sub(_link_text, source)
    text = _BOLD.sub(lambda m: "\x01" + _group(m) + "\x02", text)
    text = _ITALIC.sub(lambda m: "_" + _group(m) + "_", text)
    text = text.replace("\x01", "*").replace("\x02", "*")
    lines = [("• " + b.group(1)) if (b := _BULLET.match(line)) else line
             for line in text.splitlines()]
    return "\n".join(lines).strip()


def _inline_html(line: str) -> str:
    out = html.escape(line, quote=True)
    out = _LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', out)
    out = _BOLD.sub(lambda m: f"<strong>{_group(m)}</strong>", out)
    return _ITALIC.sub(lambda m: f"<em>{_group(m)}</em>", out)


def _html(source: str) -> str:
    blocks: list[str] = []
    for para in re.split(r"\n\s*\n", source.strip()):
        lines = [line for line in para.splitlines() if line.strip()]
        if not lines:
            continue
        if all(_BULLET.match(line) for line in lines):
            items = "".join(f"<li>{_inline_html(_BULLET.match(line).group(1))}</li>"  # type: ignore[union-attr]
                            for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        else:
            blocks.append("<p>" + "<br>".join(_inline_html(line) for line in lines) + "</p>")
    return "\n".join(blocks)


def render(source: str, channel: str) -> Rendered:
    """`source` (Markdown subset, already personalised) as `channel` shows it."""
    if channel == "whatsapp":
        return Rendered(channel, _whatsapp(source))
    if channel == "email":
        return Rendered(channel, _plain(source), _html(source))
    return Rendered(channel, _plain(source))


# ---------------------------------------------------------------------------- templates


def template_problem(source: str) -> str | None:
    """Why `source` is not a usable answer template (a syntax error, a variable other
    than `order`), or None when it is fine."""
    try:
        parsed = _ENV.parse(source)
    except TemplateError as exc:
        return f"template error: {exc}"
    unknown = meta.find_undeclared_variables(parsed) - TEMPLATE_VARIABLES
    if unknown:
        return (f"unknown template variable {', '.join(sorted(unknown))} "
                "(only {{ order.number }}, {{ order.status }}, {{ order.tracking_url }}, ...)")
    try:  # a dry run catches what the sandbox forbids (order.__class__, ...) at save time
        _ENV.from_string(source).render(order=dict(SAMPLE_ORDER))
    except SecurityError as exc:
        return f"template error: {exc}"
    except (TemplateError, TypeError, ValueError, ArithmeticError):
        pass  # a field the sample order lacks: the real order may have it
    return None


def uses_order(source: str) -> bool:
    """Whether the answer is personal: its template reads the customer's order."""
    if "{" not in source:
        return False
    try:
        return "order" in meta.find_undeclared_variables(_ENV.parse(source))
    except TemplateError:
        return False


def personalise(source: str, *, order: dict[str, Any] | None) -> str | None:
    """The answer filled from `order`, or None when it cannot be (it needs an order and
    there is none, or the order lacks a field it reads, or the template fails)."""
    if "{" not in source:
        return source
    if order is None and uses_order(source):
        return None
    try:
        text = _ENV.from_string(source).render(order=dict(order or {}))
    except (TemplateError, TypeError, ValueError, ArithmeticError):
        return None
    return text[:MAX_PERSONAL_CHARS]
