"""Jinja2 templates with autoescaping on (customer text is never trusted)."""

from __future__ import annotations

from starlette.templating import Jinja2Templates

from web.static_paths import TEMPLATES_DIR

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.autoescape = True
