"""What the composition root (`web/app.py`) takes from the FAQ package."""

from __future__ import annotations

from faq import semantic
from faq.responder import FaqResponder
from faq.service import FaqService, policy_from_settings
from inbox.ports import Responder
from inbox.settings import Settings


def build_responders(settings: Settings) -> list[Responder]:
    """The FAQ auto-answer responder, with the policy the settings configure. Its
    `FaqService` (matcher index included) is shared with the API via `rt.extras["faq"]`.
    Refuses at start-up, not at the first customer message, when `INBOX_FAQ_SEMANTIC` is
    on without the [semantic] extra installed."""
    if settings.faq_semantic and not semantic.available():
        raise semantic.SemanticUnavailable(semantic.INSTALL_HINT)
    return [FaqResponder(FaqService(policy_from_settings(settings)))]
