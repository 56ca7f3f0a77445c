from __future__ import annotations

import pytest
from django.db import transaction

from conversations import turns
from tests.channels.webhook_helpers import APP_SECRET, VERIFY_TOKEN, meta_accounts
from tests.fakes.graph_api import fake_graph  # noqa: F401 (re-exported fixture)


@pytest.fixture
def meta_app(settings):
    """The Meta app the signed webhook tests post as (no app id: no echo is ours by id)."""
    settings.META_APP_SECRET = APP_SECRET
    settings.META_VERIFY_TOKEN = VERIFY_TOKEN
    settings.META_APP_ID = ""


@pytest.fixture
def accounts(alice):
    return meta_accounts(alice.business)


@pytest.fixture
def enqueued(monkeypatch):
    """Conversation ids whose processing was enqueued and survived the commit."""
    calls: list = []

    def spy(*, conversation_id, countdown=None):
        transaction.on_commit(lambda: calls.append(conversation_id))

    monkeypatch.setattr(turns, "conversation_process_enqueue", spy)
    return calls
