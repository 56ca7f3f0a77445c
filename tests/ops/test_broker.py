"""The broker transport (icmp/broker.py): one Redis client per channel, messages still delivered."""

from __future__ import annotations

import pytest
from celery import current_app
from django.conf import settings
from kombu import Connection

from icmp.broker import Transport

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs a real Redis (REDIS_URL; CI sets it, and fails without it)"
)


def test_the_app_publishes_through_the_shared_client_transport():
    with current_app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)


def test_a_channel_reuses_one_client_and_messages_still_arrive():
    with Connection(settings.CELERY_BROKER_URL, transport=Transport) as connection:
        channel = connection.default_channel
        assert channel._create_client() is channel._create_client()

        queue = connection.SimpleQueue("icmp-broker-test")
        try:
            for n in range(3):
                queue.put({"n": n})
            received = []
            for _ in range(3):
                message = queue.get(timeout=5)
                received.append(message.payload["n"])
                message.ack()
        finally:
            queue.clear()
            queue.close()
    assert received == [0, 1, 2]
