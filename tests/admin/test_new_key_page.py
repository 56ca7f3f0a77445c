"""A key made in the admin is shown once, on the page that answers the form, never in a cookie.

Django's message storage keeps notices in a signed (readable, not encrypted)
cookie, so the key must not travel as a message.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import Client, RequestFactory

from businesses.models import APIKey, Business
from businesses.services import api_key_authenticate
from tests.admin import admin_url

pytestmark = pytest.mark.django_db

KEY = re.compile(r"icmp_[A-Za-z0-9_.\-]+")


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _cookie_texts(response) -> list[str]:
    """Every Set-Cookie as sent, plus the decoded (compressed, signed) messages cookie."""
    texts = [morsel.OutputString() for morsel in response.cookies.values()]
    if "messages" in response.cookies and response.cookies["messages"].value:
        storage = CookieStorage(RequestFactory().get("/"))
        texts += [str(m) for m in storage._decode(response.cookies["messages"].value) or []]
    return texts


def _assert_shown_once_and_never_in_a_cookie(client: Client, response, add_url: str) -> str:
    assert response.status_code == 200
    page = response.content.decode()
    keys = set(KEY.findall(page))
    assert len(keys) == 1, keys
    raw_key = keys.pop()
    assert page.count(raw_key) == 1
    assert "not shown again" in page
    assert "no-store" in response["Cache-Control"]
    assert not [text for text in _cookie_texts(response) if raw_key in text]
    # Nothing left for a later page: no message, and the add page and list are clean.
    assert list(response.context["messages"]) == []
    for url in (add_url, admin_url(APIKey, "changelist")):
        later = client.get(url)
        assert raw_key not in later.content.decode()
        assert not [text for text in _cookie_texts(later) if raw_key in text]
    return raw_key


def test_a_new_api_key_is_shown_once_on_the_answer_to_the_add_form(alice):
    client = login(alice.owner)
    add_url = admin_url(APIKey, "add")

    response = client.post(add_url, {"business": str(alice.business.pk), "name": "Zapier"})

    raw_key = _assert_shown_once_and_never_in_a_cookie(client, response, add_url)
    api_key = api_key_authenticate(raw_key=raw_key)
    assert (api_key.business, api_key.name, api_key.created_by) == (alice.business, "Zapier", alice.owner)
    assert "Zapier" in response.content.decode()


def test_the_first_key_of_a_new_business_is_shown_once_on_the_answer_to_the_add_form(db):
    root = get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw-root")
    client = login(root)
    add_url = admin_url(Business, "add")

    response = client.post(
        add_url, {"name": "Dora's Deli", "owner_email": "dora@example.com", "config": json.dumps({})}
    )

    raw_key = _assert_shown_once_and_never_in_a_cookie(client, response, add_url)
    assert api_key_authenticate(raw_key=raw_key).business == Business.objects.get(name="Dora's Deli")
