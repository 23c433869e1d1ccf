"""Channel settings read from the environment: INBOX_WHATSAPP_TEMPLATES (the approved
templates agents may send outside the window) and the webhook rate limit."""

from __future__ import annotations

import json

import pytest

from inbox.settings import Settings

BASE = {"INBOX_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "INBOX_SECRET_KEY": "k" * 32}


def test_templates_are_read_from_json_with_defaults() -> None:
    raw = json.dumps([
        {"name": "HX0123", "language": "en", "label": "Order update", "variables": ["1", "2"]},
        {"name": "order_shipped"},
    ])
    settings = Settings.from_env({**BASE, "INBOX_WHATSAPP_TEMPLATES": raw})
    assert settings.whatsapp_templates == (
        {"name": "HX0123", "language": "en", "label": "Order update", "variables": ["1", "2"]},
        {"name": "order_shipped", "language": None, "label": "order_shipped", "variables": []},
    )
    assert Settings.from_env(BASE).whatsapp_templates == ()
    assert Settings.from_env({**BASE, "INBOX_WHATSAPP_TEMPLATES": "  "}).whatsapp_templates == ()


@pytest.mark.parametrize("raw", ["not json", "{}", '[{"label": "no name"}]', '["x"]',
                                 '[{"name": ""}]', '[{"name": "t", "variables": "1"}]'])
def test_a_malformed_template_list_stops_the_server_with_a_reason(raw: str) -> None:
    with pytest.raises(SystemExit, match="INBOX_WHATSAPP_TEMPLATES"):
        Settings.from_env({**BASE, "INBOX_WHATSAPP_TEMPLATES": raw})


def test_the_webhook_rate_limit_is_read_from_the_environment() -> None:
    default = Settings.from_env(BASE)
    assert (default.webhook_rate, default.webhook_burst) == (100.0, 300)
    tuned = Settings.from_env({**BASE, "INBOX_WEBHOOK_RATE": "2500", "INBOX_WEBHOOK_BURST": "5000"})
    assert (tuned.webhook_rate, tuned.webhook_burst) == (2500.0, 5000)
    for bad in ("fast", "0", "-3", "inf", "nan"):
        with pytest.raises(SystemExit, match="INBOX_WEBHOOK_RATE"):
            Settings.from_env({**BASE, "INBOX_WEBHOOK_RATE": bad})
