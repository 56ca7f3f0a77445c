from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from channels_app.adapters import get_adapter
from channels_app.adapters.meta import verify_signature
from tests.channels import fixture_bytes

SECRET = "0123456789abcdef0123456789abcdef"


def sign(body: bytes, secret: str = SECRET, algorithm: str = "sha256") -> str:
    return f"{algorithm}=" + hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


# whatsapp/text.json is in Meta's escaped form (\ud83c\udf3b, \/); messenger/text.json
# and instagram/story_reply.json carry raw UTF-8 emoji.
SIGNED_FIXTURES = [
    ("whatsapp", "whatsapp", "text"),
    ("whatsapp", "whatsapp", "reply_context"),
    ("messenger", "messenger", "text"),
    ("messenger", "messenger", "attachment_image"),
    ("instagram", "instagram", "story_reply"),
]


@pytest.mark.parametrize(("kind", "channel", "name"), SIGNED_FIXTURES)
def test_a_signature_over_the_exact_fixture_bytes_verifies(kind: str, channel: str, name: str) -> None:
    body = fixture_bytes(channel, name)
    assert get_adapter(kind).verify_signature(body, sign(body), SECRET) is True


def test_fixtures_really_contain_escaped_and_raw_emoji() -> None:
    assert b"\\ud83c\\udf3b" in fixture_bytes("whatsapp", "text")
    assert b"\\/" in fixture_bytes("whatsapp", "text")
    assert "🚚".encode() in fixture_bytes("messenger", "text")


def test_hashing_reserialized_json_instead_of_the_raw_body_fails() -> None:
    raw = fixture_bytes("whatsapp", "text")
    reserialized = json.dumps(json.loads(raw), ensure_ascii=False).encode()
    assert verify_signature(reserialized, sign(raw), SECRET) is False


def test_a_signature_made_with_another_secret_is_rejected() -> None:
    body = fixture_bytes("messenger", "text")
    assert verify_signature(body, sign(body, secret="attacker-secret"), SECRET) is False


def test_a_tampered_body_is_rejected() -> None:
    body = fixture_bytes("messenger", "text")
    header = sign(body)
    tampered = body.replace(b"Curitiba", b"Curitibb")
    assert verify_signature(tampered, header, SECRET) is False


@pytest.mark.parametrize("header", [None, "", "sha256=", "sha256", "garbage", "sha256=zz"])
def test_a_missing_or_malformed_header_is_rejected(header: str | None) -> None:
    assert verify_signature(b"{}", header, SECRET) is False


def test_the_legacy_sha1_header_is_rejected_even_when_correct() -> None:
    body = fixture_bytes("messenger", "text")
    assert verify_signature(body, sign(body, algorithm="sha1"), SECRET) is False


def test_a_non_ascii_header_is_rejected_without_raising() -> None:
    assert verify_signature(b"{}", "sha256=ünïcødé", SECRET) is False


def test_an_empty_app_secret_never_verifies() -> None:
    body = b"{}"
    assert verify_signature(body, sign(body, secret=""), "") is False


def test_uppercase_hex_and_surrounding_whitespace_are_tolerated() -> None:
    body = fixture_bytes("whatsapp", "image")
    digest = sign(body).removeprefix("sha256=")
    assert verify_signature(body, f"  sha256={digest.upper()} ", SECRET) is True


def test_the_api_channel_has_no_signature_and_fails_closed() -> None:
    adapter = get_adapter("api")
    body = b'{"contact": "c1", "text": "hi"}'
    assert adapter.signed is False
    assert adapter.verify_signature(body, sign(body), SECRET) is False
