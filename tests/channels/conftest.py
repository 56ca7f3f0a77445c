from __future__ import annotations

import uuid

import pytest

from conversations import tasks
from conversations.turns import TurnOutcome
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
    """Conversation ids whose processing a committed webhook event started (no turn runs).

    The apply task runs the first conversation's turn itself and enqueues the
    others; both reach conversation_turn_process, which this replaces.
    """
    calls: list = []

    def spy(*, conversation_id, wait_for_burst=True):
        calls.append(uuid.UUID(str(conversation_id)))
        return TurnOutcome(status="done")

    monkeypatch.setattr(tasks, "conversation_turn_process", spy)
    return calls
