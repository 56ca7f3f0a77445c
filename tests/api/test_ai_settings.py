"""business/ai-settings/: the caller's AI control settings."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from businesses.models import AIControlSettings

URL = "/api/v1/business/ai-settings/"


def test_the_settings_are_read_with_their_defaults(alice):
    response = alice.client().get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["auto_reply_enabled"] is True
    assert body["burst_window_seconds"] == 3
    assert body["monthly_token_budget"] is None
    assert body["whatsapp_window_template_language"] == "en_US"


def test_a_missing_row_is_created_on_first_read(alice):
    AIControlSettings.objects.filter(business=alice.business).delete()

    response = alice.client().get(URL)

    assert response.status_code == 200
    assert AIControlSettings.objects.filter(business=alice.business).count() == 1


def test_patch_changes_the_callers_settings_only(alice, bob):
    body = {
        "auto_reply_enabled": False,
        "burst_window_seconds": 300,
        "fallback_text": "A person will answer soon.",
        "history_token_budget": 4000,
        "monthly_token_budget": 2_000_000,
        "max_turns_per_conversation": 40,
        "whatsapp_window_template": "follow_up",
        "whatsapp_window_template_language": "pt_BR",
    }

    response = alice.client().patch(URL, body, format="json")

    assert response.status_code == 200, response.content
    assert {k: response.json()[k] for k in body} == body
    stored = AIControlSettings.objects.get(business=alice.business)
    assert stored.auto_reply_enabled is False
    assert stored.whatsapp_window_template_language == "pt_BR"
    assert AIControlSettings.objects.get(business=bob.business).auto_reply_enabled is True


def test_limits_can_be_cleared_with_null(alice):
    alice.client().patch(URL, {"monthly_token_budget": 10}, format="json")

    response = alice.client().patch(URL, {"monthly_token_budget": None}, format="json")

    assert response.status_code == 200
    assert AIControlSettings.objects.get(business=alice.business).monthly_token_budget is None


@pytest.mark.parametrize(
    "body, field",
    [
        ({"burst_window_seconds": 301}, "burst_window_seconds"),
        ({"burst_window_seconds": -1}, "burst_window_seconds"),
        ({"burst_window_seconds": "soon"}, "burst_window_seconds"),
        ({"auto_reply_enabled": "maybe"}, "auto_reply_enabled"),
        ({"history_token_budget": None}, "history_token_budget"),
        ({"max_turns_per_conversation": 0}, "max_turns_per_conversation"),
        ({"whatsapp_window_template_language": "English"}, "whatsapp_window_template_language"),
        ({"business": "x"}, "business"),
        ({"updated_at": "2020-01-01T00:00:00Z"}, "updated_at"),
        ({"turbo": True}, "turbo"),
    ],
)
def test_invalid_settings_answer_400_and_change_nothing(alice, body, field):
    response = alice.client().patch(URL, {"fallback_text": "changed?", **body}, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    stored = AIControlSettings.objects.get(business=alice.business)
    assert stored.fallback_text == ""
    assert stored.burst_window_seconds == 3


def test_an_editor_may_read_but_not_change_ai_settings(alice, alice_editor):
    client = APIClient()
    client.login(username="eve@example.com", password="pw-eve")

    assert client.get(URL).status_code == 200
    response = client.patch(URL, {"auto_reply_enabled": False}, format="json")

    assert response.status_code == 403
    assert AIControlSettings.objects.get(business=alice.business).auto_reply_enabled is True


def test_platform_keys_have_no_ai_settings(master_client, db):
    assert master_client.get(URL).status_code == 403
