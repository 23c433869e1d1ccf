"""HTML from customers' mail: sanitised for agents' eyes, and turned into text.

`sanitise(html)` promises markup that runs no script (no script/style/iframe/form tags,
no event-handler attributes, no javascript: URLs) and loads nothing remote by itself: a
remote `<img src>` becomes `data-remote-src` for the UI to load on a click (tracking
pixels stay silent), CSS is limited to properties that cannot fetch a URL, `cid:` image
references stay as `src="cid:..."` so the UI can map them to inline attachments.

`html_to_text(html)` promises readable plain text for HTML-only mail: block elements
become line breaks and `<blockquote>` content is prefixed with "> ", so the quote
splitter folds it like any plain-text quote.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

__all__ = ["html_to_text", "sanitise"]

_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "tfoot", "u", "s", "center"}
_ATTRIBUTES: dict[str, set[str]] = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"style", "dir", "lang", "title", "align"}
_ATTRIBUTES["img"] = {"src", "alt", "width", "height", "align", "title"}
_ATTRIBUTES["font"] = {"color", "face", "size"}
_ATTRIBUTES["table"] = _ATTRIBUTES.get("table", set()) | {"width", "border", "cellpadding", "cellspacing", "bgcolor"}
_ATTRIBUTES["td"] = _ATTRIBUTES.get("td", set()) | {"width", "valign", "bgcolor"}
# Classes mail clients use to mark quotes and signatures; the UI may fold them. Any other
# class could restyle our own page, so it goes.
_CLASSES = {"gmail_quote", "gmail_attr", "gmail_signature", "moz-cite-prefix", "moz-signature"}
_ALLOWED_CLASSES = {tag: _CLASSES for tag in ("div", "blockquote", "span", "p", "pre")}
# CSS properties that cannot reference a URL (no background, border-image, list-style,
# content, cursor): https://developer.mozilla.org/en-US/docs/Web/CSS/url_function
_STYLE = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "font-variant", "text-align", "text-decoration", "text-indent",
    "text-transform", "line-height", "letter-spacing", "white-space", "vertical-align",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left", "padding",
    "padding-top", "padding-right", "padding-bottom", "padding-left", "border",
    "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-style", "border-width", "border-collapse", "border-spacing", "width",
    "height", "max-width", "min-width", "direction", "list-style-type", "display",
}
_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
# nh3 (html5ever) serialises every attribute as name="value" with '"' escaped, so this
# matches its output exactly.
_IMG_TAG = re.compile(r'<img(?:\s+[^\s=>]+(?:="[^"]*")?)*\s*/?>')
_REMOTE_SRC = re.compile(r'\ssrc="((?:https?:)?//[^"]*)"', re.IGNORECASE)


def _filter(tag: str, attr: str, value: str) -> str | None:
    if tag == "img" and attr == "src":
        lowered = value.strip().lower()
        if lowered.startswith(("cid:", "http://", "https://", "//")):
            return value.strip()
        return None  # relative or data: images load from places we do not vouch for
    return value


def sanitise(html: str) -> str:
    """Markup safe to show in the agent UI (see the module docstring for the promise)."""
    cleaned = nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head", "template", "noscript"},
        attributes=_ATTRIBUTES,
        attribute_filter=_filter,
        allowed_classes=_ALLOWED_CLASSES,
        filter_style_properties=_STYLE,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return _IMG_TAG.sub(lambda m: _REMOTE_SRC.sub(r' data-remote-src="\1"', m.group()), cleaned)


_BLOCK = {
    "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "pre", "hr", "blockquote", "section", "article", "header", "footer", "dd", "dt", "dl",
}
_SKIP = {"script", "style", "head", "title", "template", "noscript"}


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.depth = 0  # blockquote nesting
        self.skipping = 0
        self.pre = 0

    def _newline(self) -> None:
        if self.lines[-1].strip() or len(self.lines) == 1 or self.lines[-2].strip():
            self.lines.append("")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "br":
            self.lines.append("")
        elif tag in _BLOCK:
            self._newline()
        if tag == "blockquote":
            self.depth += 1
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK and tag != "br":
            if tag == "blockquote":
                self.depth = max(0, self.depth - 1)
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        text = data.replace("\xa0", " ")
        if not self.pre:
            text = re.sub(r"\s+", " ", text)
        chunks = text.split("\n")
        for i, chunk in enumerate(chunks):
            if i:
                self.lines.append("")
            if not self.lines[-1] and self.depth:
                self.lines[-1] = "> " * self.depth
            self.lines[-1] += chunk.lstrip() if not self.lines[-1].strip(" >") else chunk


def html_to_text(html: str) -> str:
    """Plain text for `html` (see the module docstring)."""
    collector = _TextCollector()
    try:
        collector.feed(html)
        collector.close()
    except Exception:  # HTMLParser is lenient; this guards against the unforeseen
        return re.sub(r"<[^>]+>", " ", html).strip()
    text = "\n".join(line.rstrip() for line in collector.lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
