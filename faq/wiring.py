"""What the composition root (`web/app.py`) takes from the FAQ package."""

from __future__ import annotations

from faq.responder import FaqResponder
from faq.service import FaqService, policy_from_settings
from inbox.ports import Responder
from inbox.settings import Settings


def build_responders(settings: Settings) -> list[Responder]:
    """The FAQ auto-answer responder, with the policy the settings configure. Its
    `FaqService` (matcher index included) is shared with the API via `rt.extras["faq"]`."""
    return [FaqResponder(FaqService(policy_from_settings(settings)))]
