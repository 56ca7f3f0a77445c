"""The tenancy world every test can use.

Alice owns "Alice's Bakery", Bob owns "Bob's Garage"; Charlie is a staff user
with no membership at all. Each business has an API key (raw value kept on the
fixture), a WhatsApp channel account, a stage, a template, a contact, a
conversation with two messages and an LLM call, so cross-tenant tests have an
object of every kind to aim at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from businesses.models import Business
from businesses.services import business_create, membership_add
from channels_app.models import ChannelAccount, ChannelKind
from conversations.models import (
    Author,
    Contact,
    Conversation,
    Direction,
    LLMCall,
    LLMOutcome,
    LLMPurpose,
    Message,
    MessageStatus,
)
from stages.models import Stage
from templates_app.models import PromptTemplate, TemplateKind
from tests.fakes.graph_api import fake_graph  # noqa: F401 (shared fixture)
from tests.fakes.openai_server import fake_llm  # noqa: F401 (shared fixture)

MASTER_KEY = "test-master-key-0123456789abcdef"
INTERNAL_KEY = "test-internal-key-0123456789abcdef"


@dataclass
class Tenant:
    business: Business
    raw_key: str
    owner: Any
    channel: ChannelAccount
    stage: Stage
    template: PromptTemplate
    contact: Contact
    conversation: Conversation
    messages: list[Message] = field(default_factory=list)
    llm_call: LLMCall | None = None

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {self.raw_key}")
        return client


def make_tenant(name: str, email: str, phone_number_id: str) -> Tenant:
    business, raw_key = business_create(name=name, owner_email=email)
    owner = business.owner
    owner.set_password("pw-" + email)
    owner.save()
    channel = ChannelAccount.objects.create(
        business=business,
        kind=ChannelKind.WHATSAPP,
        external_id=phone_number_id,
        name=f"{name} WhatsApp",
        access_token=f"EAAG-secret-token-{phone_number_id}",
        app_secret=f"app-secret-{phone_number_id}",
    )
    stage = Stage.objects.get(business=business, is_initial=True)
    template = PromptTemplate.objects.create(
        business=business,
        kind=TemplateKind.RESPONSE_GENERATION,
        name="Friendly reply",
        content="You are {{ agent.name }} for {{ business.name }}.",
    )
    contact = Contact.objects.create(
        business=business, channel_account=channel, external_id=f"{phone_number_id}99", name="Customer"
    )
    conversation = Conversation.objects.create(
        business=business, contact=contact, channel_account=channel, stage=stage
    )
    inbound = Message.objects.create(
        business=business,
        conversation=conversation,
        channel_account=channel,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        text="Hello",
        external_id=f"wamid.{phone_number_id}.1",
        status=MessageStatus.ANSWERED,
    )
    outbound = Message.objects.create(
        business=business,
        conversation=conversation,
        channel_account=channel,
        direction=Direction.OUT,
        author=Author.AI,
        text="Hi! How can I help?",
        external_id=f"wamid.{phone_number_id}.2",
        status=MessageStatus.DELIVERED,
    )
    llm_call = LLMCall.objects.create(
        business=business,
        conversation=conversation,
        message=inbound,
        stage=stage,
        template=template,
        template_version=template.version,
        purpose=LLMPurpose.RESPONSE,
        model="gpt-4o-mini",
        prompt_tokens=120,
        completion_tokens=12,
        latency_ms=300,
        outcome=LLMOutcome.OK,
    )
    return Tenant(
        business=business,
        raw_key=raw_key,
        owner=owner,
        channel=channel,
        stage=stage,
        template=template,
        contact=contact,
        conversation=conversation,
        messages=[inbound, outbound],
        llm_call=llm_call,
    )


@pytest.fixture(autouse=True)
def _tasks_in_process():
    """Tasks run in-process (after commit) as in embedded mode, even when CI sets
    REDIS_URL; the real-worker tests switch this off for themselves."""
    from icmp.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters and failed-auth counters must not leak between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(db) -> Tenant:
    return make_tenant("Alice's Bakery", "alice@example.com", "1065403522")


@pytest.fixture
def bob(db) -> Tenant:
    return make_tenant("Bob's Garage", "bob@example.com", "2077104511")


@pytest.fixture
def charlie(db):
    """A staff user who belongs to no business."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(
        "charlie@example.com", "charlie@example.com", "pw-charlie", is_staff=True
    )


@pytest.fixture
def alice_editor(alice):
    membership, _ = membership_add(
        business=alice.business, email="eve@example.com", role="editor", password="pw-eve"
    )
    return membership.user


@pytest.fixture
def alice_viewer(alice):
    membership, _ = membership_add(
        business=alice.business, email="victor@example.com", role="viewer", password="pw-victor"
    )
    return membership.user


@pytest.fixture
def master_client() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {MASTER_KEY}")
    return client


@pytest.fixture
def internal_client() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {INTERNAL_KEY}")
    return client


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()
