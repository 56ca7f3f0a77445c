"""A bakery with a stage set, platform templates, and the fake OpenAI server.

Alice's Bakery gets three stages on top of its initial `general` one:
`booking` (collects name, date and party size), `menu` (no data) and `human`
(a handoff stage).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Author, Conversation, Direction, Message, MessageStatus
from stages.models import Stage
from templates_app.defaults import platform_templates_seed
from tests.conftest import Tenant
from tests.fakes.openai_server import FakeOpenAI, Reply, fake_llm  # noqa: F401

BOOKING_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "description": "The customer's name."},
        "date": {"type": "string", "format": "date", "description": "Day of the booking."},
        "party_size": {"type": "integer", "minimum": 1, "maximum": 20},
    },
    "required": ["name", "date", "party_size"],
}


@dataclass
class Bakery:
    tenant: Tenant
    general: Stage
    booking: Stage
    menu: Stage
    human: Stage

    @property
    def conversation(self) -> Conversation:
        return self.tenant.conversation

    def say(
        self, text: str, *, status: str = MessageStatus.RECEIVED, ago: timedelta | None = None
    ) -> Message:
        """A customer message in the conversation (pending unless `status` says otherwise)."""
        return message_add(self.conversation, text, inbound=True, status=status, ago=ago)

    def answer(self, text: str, *, ago: timedelta | None = None) -> Message:
        return message_add(self.conversation, text, inbound=False, status=MessageStatus.DELIVERED, ago=ago)


def message_add(
    conversation: Conversation, text: str, *, inbound: bool, status: str, ago: timedelta | None = None
) -> Message:
    message = Message.objects.create(
        business=conversation.business,
        conversation=conversation,
        channel_account=conversation.channel_account,
        direction=Direction.IN if inbound else Direction.OUT,
        author=Author.CUSTOMER if inbound else Author.AI,
        text=text,
        status=status,
    )
    if ago is not None:
        Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - ago)
        message.refresh_from_db()
    return message


@pytest.fixture
def platform_templates(db):
    return {r.template.kind: r.template for r in platform_templates_seed()}


@pytest.fixture
def bakery(alice, platform_templates) -> Bakery:
    business = alice.business
    booking = Stage.objects.create(
        business=business,
        key="booking",
        name="Booking",
        description="The customer wants to book a table.",
        order=1,
        data_schema=BOOKING_SCHEMA,
    )
    menu = Stage.objects.create(
        business=business, key="menu", name="Menu", description="Questions about what we bake.", order=2
    )
    human = Stage.objects.create(
        business=business,
        key="human",
        name="Staff",
        description="Complaints and anything the assistant cannot handle.",
        order=3,
        is_handoff=True,
    )
    return Bakery(tenant=alice, general=alice.stage, booking=booking, menu=menu, human=human)


@pytest.fixture
def fake(fake_llm) -> FakeOpenAI:  # noqa: F811
    return fake_llm


__all__ = ["BOOKING_SCHEMA", "Bakery", "FakeOpenAI", "Reply", "message_add"]
