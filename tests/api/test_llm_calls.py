"""llm-calls/: the read-only LLM call ledger, its filters and its tenancy."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from conversations.models import Contact, Conversation, LLMCall, LLMOutcome, LLMPurpose
from stages.models import Stage

URL = "/api/v1/llm-calls/"


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def add_call(tenant, *, conversation=None, stage=None, hours_ago: float = 0, **fields) -> LLMCall:
    defaults = {"purpose": LLMPurpose.SELECTION, "model": "gpt-4o-mini", "outcome": LLMOutcome.OK}
    call = LLMCall.objects.create(
        business=tenant.business,
        conversation=conversation or tenant.conversation,
        stage=stage,
        **{**defaults, **fields},
    )
    if hours_ago:
        LLMCall.objects.filter(pk=call.pk).update(created_at=timezone.now() - timedelta(hours=hours_ago))
    return call


def test_the_list_shows_ledger_fields_without_prompts_or_responses(alice):
    LLMCall.objects.filter(pk=alice.llm_call.pk).update(
        cost=Decimal("0.000123"),
        cached_tokens=64,
        request_messages=[{"role": "system", "content": "secret-ish prompt"}],
        response_text="Hi there",
    )

    response = alice.client().get(URL)

    assert ids(response) == [str(alice.llm_call.pk)]
    row = response.json()["results"][0]
    assert row["conversation"] == str(alice.conversation.pk)
    assert row["message"] == str(alice.messages[0].pk)
    assert row["stage"] == str(alice.stage.pk)
    assert row["template"] == str(alice.template.pk)
    assert row["template_version"] == alice.template.version
    assert row["purpose"] == "response"
    assert row["model"] == "gpt-4o-mini"
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (120, 12, 64)
    assert row["latency_ms"] == 300
    assert row["cost"] == "0.000123"
    assert row["outcome"] == "ok"
    assert row["error"] == ""
    assert row["dry_run"] is False
    assert row["created_at"]
    assert "request_messages" not in row
    assert b"secret-ish prompt" not in response.content


def test_the_detail_includes_the_request_and_response(alice):
    LLMCall.objects.filter(pk=alice.llm_call.pk).update(
        request_messages=[{"role": "user", "content": "Hello"}],
        response_text='{"stage": "general"}',
        response_json={"stage": "general"},
        base_url_host="api.openai.com",
    )

    response = alice.client().get(f"{URL}{alice.llm_call.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["request_messages"] == [{"role": "user", "content": "Hello"}]
    assert body["response_text"] == '{"stage": "general"}'
    assert body["response_json"] == {"stage": "general"}
    assert body["base_url_host"] == "api.openai.com"
    assert body["cost"] is None


def test_the_list_is_newest_first(alice):
    older = add_call(alice, hours_ago=5)
    newest = add_call(alice)
    LLMCall.objects.filter(pk=alice.llm_call.pk).update(created_at=timezone.now() - timedelta(hours=1))

    assert ids(alice.client().get(URL)) == [str(newest.pk), str(alice.llm_call.pk), str(older.pk)]


def test_each_filter_narrows_the_list(alice):
    contact = Contact.objects.create(business=alice.business, channel_account=alice.channel, external_id="2")
    other_conversation = Conversation.objects.create(
        business=alice.business, contact=contact, channel_account=alice.channel
    )
    booking = Stage.objects.create(business=alice.business, key="booking", name="Booking", order=1)
    elsewhere = add_call(alice, conversation=other_conversation, stage=booking, hours_ago=48)
    failed = add_call(alice, purpose=LLMPurpose.EXTRACTION, outcome=LLMOutcome.ERROR, error="timeout")
    client = alice.client()

    def listed(**query) -> set[str]:
        return set(ids(client.get(URL, query)))

    original = str(alice.llm_call.pk)
    assert listed(conversation=str(other_conversation.pk)) == {str(elsewhere.pk)}
    assert listed(conversation=str(alice.conversation.pk)) == {original, str(failed.pk)}
    assert listed(stage=str(booking.pk)) == {str(elsewhere.pk)}
    assert listed(stage=str(alice.stage.pk)) == {original}
    assert listed(purpose="extraction") == {str(failed.pk)}
    assert listed(purpose="response") == {original}
    assert listed(outcome="error") == {str(failed.pk)}
    cutoff = (timezone.now() - timedelta(hours=24)).isoformat()
    assert listed(created_before=cutoff) == {str(elsewhere.pk)}
    assert listed(created_after=cutoff) == {original, str(failed.pk)}
    assert listed(created_after=cutoff, purpose="selection") == set()


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("conversation", "not-a-uuid"),
        ("stage", "general"),
        ("purpose", "chat"),
        ("outcome", "great"),
        ("created_after", "yesterday"),
        ("created_before", "2024-13-45"),
        ("dry_run", "maybe"),
    ],
)
def test_a_filter_value_of_the_wrong_type_answers_400(alice, param, value):
    response = alice.client().get(URL, {param: value})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert param in error["details"]


def test_the_ledger_is_read_only(alice):
    client = alice.client()
    url = f"{URL}{alice.llm_call.pk}/"

    assert client.post(URL, {"model": "x"}, format="json").status_code == 405
    assert client.patch(url, {"model": "x"}, format="json").status_code == 405
    assert client.delete(url).status_code == 405
    alice.llm_call.refresh_from_db()
    assert alice.llm_call.model == "gpt-4o-mini"


def test_a_viewer_can_read_the_ledger(alice, alice_viewer):
    client = APIClient()
    assert client.login(username="victor@example.com", password="pw-victor")

    assert ids(client.get(URL)) == [str(alice.llm_call.pk)]


def test_bob_never_sees_alices_calls(alice, bob):
    client = bob.client()

    assert client.get(f"{URL}{alice.llm_call.pk}/").status_code == 404
    assert ids(client.get(URL)) == [str(bob.llm_call.pk)]
    for query in ({"conversation": str(alice.conversation.pk)}, {"stage": str(alice.stage.pk)}):
        response = client.get(URL, query)
        assert ids(response) == []
        assert str(alice.llm_call.pk).encode() not in response.content
