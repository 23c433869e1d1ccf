"""The connector registry: provider name -> builder, resolved lazily by import string.

Adding a channel is one module plus one line here. A builder takes the `Settings` and
returns a ready connector, or None when that provider is not configured.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from inbox.ports import Connector
from inbox.settings import Settings

log = logging.getLogger(__name__)

REGISTRY: dict[str, str] = {
    "webchat": "connectors.webchat:build",
    "twilio": "connectors.twilio:build",
    "meta": "connectors.whatsapp:build",
    "email": "connectors.email:build",
}


def _resolve(path: str) -> Callable[[Settings], Connector | None]:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    builder = getattr(module, attr)
    return builder  # type: ignore[no-any-return]


def build_all(settings: Settings) -> dict[str, Connector]:
    """Every configured connector, by provider name."""
    built: dict[str, Connector] = {}
    for provider, path in REGISTRY.items():
        try:
            builder = _resolve(path)
        except (ImportError, AttributeError):
            log.warning("connector %s is not available (%s)", provider, path)
            continue
        connector = builder(settings)
        if connector is not None:
            built[provider] = connector
    return built
