"""Building and posting signed WhatsApp webhooks for the end-to-end tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from rest_framework.test import APIClient


def envelope(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def text_message(
    phone_number_id: str, *, wa_id: str, wamid: str, text: str, name: str = "Ana"
) -> dict[str, Any]:
    return envelope(
        phone_number_id,
        {
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [
                {
                    "from": wa_id,
                    "id": wamid,
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        },
    )


def status(phone_number_id: str, *, wamid: str, state: str, wa_id: str) -> dict[str, Any]:
    return envelope(
        phone_number_id,
        {
            "statuses": [
                {"id": wamid, "status": state, "timestamp": str(int(time.time())), "recipient_id": wa_id}
            ]
        },
    )


def post_signed(payload: dict[str, Any], secret: str):
    body = json.dumps(payload, ensure_ascii=False).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return APIClient().post(
        "/webhooks/whatsapp/",
        data=body,
        content_type="application/json",
        headers={"X-Hub-Signature-256": signature},
    )
