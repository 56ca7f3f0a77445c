"""/metrics: Prometheus text, from the database, behind the internal key."""

from __future__ import annotations

from conversations.models import Author, Direction, Message, MessageStatus
from tests.conftest import INTERNAL_KEY, MASTER_KEY


def test_metrics_need_a_platform_key(client, alice):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {alice.raw_key}"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"}).status_code == 200


def test_metrics_report_pending_work_and_llm_activity(client, alice):
    alice.conversation.contact.name = "Zebra Private-Name"
    alice.conversation.contact.save(update_fields=["name"])
    Message.objects.create(
        business=alice.business,
        conversation=alice.conversation,
        channel_account=alice.channel,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        text="hi, my secret is zebra-private-words",
        status=MessageStatus.RECEIVED,
    )
    response = client.get("/metrics", headers={"Authorization": f"Bearer {INTERNAL_KEY}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert 'icmp_messages_pending{direction="in",status="received"} 1.0' in body
    assert 'icmp_llm_calls_last_hour{outcome="ok",purpose="response"} 1.0' in body
    assert 'icmp_llm_tokens_last_hour{kind="prompt"} 120.0' in body
    # No secret or customer text leaks into metrics.
    assert alice.channel.access_token not in body
    assert "zebra-private-words" not in body
    assert "Zebra Private-Name" not in body
