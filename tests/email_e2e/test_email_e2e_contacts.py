"""Who wrote: mail from a known address joins that contact (whatever the channel they
first came from); a display name names a contact only when it has no name yet."""

from __future__ import annotations

import pytest

from inbox import pipeline
from inbox.models import Conversation, Identity
from inbox.types import Inbound
from tests.email_e2e.helpers import (
    by_thread_id,
    contact,
    conversation,
    eml,
    mail,
    mail_settings,
    post_mail,
    rows,
)
from tests.support.server import LiveServer, live_server

pytestmark = pytest.mark.e2e


async def _contact_of(srv: LiveServer, raw: bytes, message_id: str) -> int:
    response = await post_mail(srv, raw)
    assert response.status_code == 200, response.text
    conv = await conversation(srv.rt, (await by_thread_id(srv.rt, message_id)).conversation_id)
    return conv.contact_id


async def test_display_names_and_known_addresses(database_url: str) -> None:
    async with live_server(mail_settings(database_url)) as srv:
        # First mail without a display name: a contact with no name.
        kim = await _contact_of(srv, mail(sender="kim@example.com", subject="Hi", text="Question",
                                          message_id="<n1@example.com>"), "<n1@example.com>")
        assert (await contact(srv.rt, kim)).name is None
        # The same address (other case) with a name: the same contact, now named.
        again = await _contact_of(srv, mail(sender="Kim Lee <KIM@Example.COM>", subject="Hi again",
                                            text="More", message_id="<n2@example.com>"), "<n2@example.com>")
        assert again == kim and (await contact(srv.rt, kim)).name == "Kim Lee"
        # A different display name later never renames them (an agent may have fixed it).
        third = await _contact_of(srv, mail(sender="Kimberly L. <kim@example.com>", subject="Hi 3",
                                            text="Again", message_id="<n3@example.com>"), "<n3@example.com>")
        assert third == kim and (await contact(srv.rt, kim)).name == "Kim Lee"
        emails = [i for i in await rows(srv.rt, Identity) if i.kind == "email"]
        assert [i.value for i in emails] == ["kim@example.com"]

        # A web-chat visitor who only typed an address is not its owner: mail from it
        # makes a contact of its own.
        typed = await pipeline.ingest(srv.rt, Inbound(
            channel="webchat", provider="webchat", provider_message_id="chat-0", sender="v_eve",
            sender_kind="webchat", recipient="webchat", text="Where is Bo's order?"))
        await pipeline.identify_visitor(srv.rt, visitor="v_eve", email="bo@example.org", name="Bo")
        bo = await _contact_of(srv, mail(sender="Bo <bo@example.org>", subject="Hello",
                                         text="It's Bo", message_id="<b1@example.org>"),
                               "<b1@example.org>")
        assert bo != typed.contact_id
        assert (await contact(srv.rt, typed.contact_id)).claimed_email == "bo@example.org"

        # A web-chat visitor whose email the shop signed is the same person when they mail us.
        chat = await pipeline.ingest(srv.rt, Inbound(
            channel="webchat", provider="webchat", provider_message_id="chat-1", sender="v_ana",
            sender_kind="webchat", recipient="webchat", text="Hello from the shop page"))
        await pipeline.identify_visitor(srv.rt, visitor="v_ana", email="Ana@Example.org", name="Ana",
                                        verified=True)
        ana = await _contact_of(srv, mail(sender="Ana Maria Silva <ana@example.org>", subject="My order",
                                          text="Following up by mail", message_id="<a1@example.org>"),
                                "<a1@example.org>")
        assert ana == chat.contact_id
        assert (await contact(srv.rt, ana)).name == "Ana"
        assert {c.channel for c in await rows(srv.rt, Conversation, Conversation.contact_id == ana)} == {
            "webchat", "email"}

        # Real headers: a raw 8-bit Latin-1 name and an encoded-word name with a comma.
        ingo = await _contact_of(srv, eml("flanker_raw_8bit_latin1_from_header_quoted_reply.eml"),
                                 "<33C7E4E1.2A12445E@blank.pages.de>")
        assert (await contact(srv.rt, ingo)).name == "Ingo Lütkebohle"
        comma = eml("mailparser_encoded_word_comma_in_display_name.eml")
        response = await post_mail(srv, comma)
        assert response.status_code == 200
        [identity] = [i for i in await rows(srv.rt, Identity) if i.value == "comma.name@example.com"]
        assert (await contact(srv.rt, identity.contact_id)).name == "LastßlName, FirstName"

        # "alice@example.com <bob@example.com>": an address posing as a name names nobody.
        bob = await _contact_of(srv, eml("mailparser_email_address_as_display_name.eml"),
                                "<test-email-as-name@example.com>")
        assert (await contact(srv.rt, bob)).name is None
