"""Channel secrets are encrypted at rest: the column holds a Fernet token, the code reads plain text."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, override_settings

from channels_app.models import ChannelAccount, ChannelKind
from icmp.crypto import DecryptionError
from icmp.fields import stored
from tests.admin import admin_url, form_post_data
from tests.channels.webhook_helpers import post_json, url

pytestmark = pytest.mark.django_db

TEST_KEY = settings.FIELD_ENCRYPTION_KEYS[0]
NEW_KEY = Fernet.generate_key().decode()
UNLISTED_KEY = Fernet.generate_key().decode()
TOKEN = "EAAG-at-rest-token-3c9e71"
APP_SECRET = "at-rest-app-secret-5b20"
VERIFY_TOKEN = "at-rest-verify-token-a1f4"


def stored_secrets(account_id) -> dict[str, str]:
    """The three columns as the database holds them, read past the ORM."""
    quote = connection.ops.quote_name
    columns = ChannelAccount.SECRET_FIELDS
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(ChannelAccount._meta.db_table)} "
            f"WHERE {quote('id')} = %s",
            [ChannelAccount._meta.pk.get_db_prep_value(account_id, connection)],
        )
        return dict(zip(columns, cursor.fetchone(), strict=True))


def assert_encrypted(value: str, plaintext: str, *, key: str = TEST_KEY) -> None:
    assert plaintext not in value
    assert Fernet(key).decrypt(value.encode()).decode() == plaintext


def test_secrets_posted_to_the_api_are_stored_encrypted_and_still_work(alice, settings, fake_graph):
    fake_graph.owns(TOKEN, "whatsapp", "3300112233")
    settings.META_APP_SECRET = settings.META_VERIFY_TOKEN = ""  # only the account's own secrets
    body = {
        "kind": "whatsapp",
        "external_id": "3300112233",
        "name": "Second number",
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
    }

    response = alice.client().post("/api/v1/channel-accounts/", body, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["has_access_token"] is response.json()["has_verify_token"] is True
    account = ChannelAccount.objects.get(pk=response.json()["id"])
    raw = stored_secrets(account.pk)
    assert_encrypted(raw["access_token"], TOKEN)
    assert_encrypted(raw["app_secret"], APP_SECRET)
    assert_encrypted(raw["verify_token"], VERIFY_TOKEN)
    assert (account.access_token, account.app_secret, account.verify_token) == (
        TOKEN,
        APP_SECRET,
        VERIFY_TOKEN,
    )
    # The webhook doors read the decrypted values: the handshake and the signature check pass.
    handshake = Client().get(
        url("whatsapp", account),
        {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": VERIFY_TOKEN},
    )
    assert (handshake.status_code, handshake.content) == (200, b"42")
    payload = {"object": "whatsapp_business_account", "entry": []}
    assert post_json("whatsapp", payload, secret=APP_SECRET, account=account).status_code == 200
    assert post_json("whatsapp", payload, secret=raw["app_secret"], account=account).status_code == 403


def test_a_secret_patched_through_the_api_is_stored_encrypted(alice):
    url_ = f"/api/v1/channel-accounts/{alice.channel.pk}/"

    response = alice.client().patch(url_, {"verify_token": VERIFY_TOKEN}, format="json")

    assert response.status_code == 200
    assert_encrypted(stored_secrets(alice.channel.pk)["verify_token"], VERIFY_TOKEN)
    # An emptied secret is stored empty: "is it set" needs no key.
    alice.client().patch(url_, {"verify_token": ""}, format="json")
    assert stored_secrets(alice.channel.pk)["verify_token"] == ""


def test_secrets_set_in_the_admin_are_stored_encrypted(alice, fake_graph):
    fake_graph.owns(TOKEN, "messenger", "102938475610293")
    client = Client()
    client.force_login(alice.owner)
    page = client.get(admin_url(ChannelAccount, "add"))
    data = form_post_data(page) | {
        "business": str(alice.business.pk),
        "kind": ChannelKind.MESSENGER,
        "external_id": "102938475610293",
        "name": "Bakery Page",
        "is_active": "on",
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
    }

    response = client.post(admin_url(ChannelAccount, "add"), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    account = ChannelAccount.objects.get(external_id="102938475610293")
    raw = stored_secrets(account.pk)
    assert_encrypted(raw["access_token"], TOKEN)
    assert_encrypted(raw["app_secret"], APP_SECRET)
    assert raw["verify_token"] == ""

    page = client.get(admin_url(account, "change"))
    assert "access token: set" in page.content.decode()
    data = form_post_data(page) | {"verify_token": VERIFY_TOKEN}
    response = client.post(admin_url(account, "change"), data)
    assert response.status_code == 302
    raw = stored_secrets(account.pk)
    assert_encrypted(raw["verify_token"], VERIFY_TOKEN)
    assert_encrypted(raw["access_token"], TOKEN)  # an empty input kept it, still encrypted


def test_every_save_path_encrypts(alice):
    ChannelAccount.objects.filter(pk=alice.channel.pk).update(verify_token=VERIFY_TOKEN)
    alice.channel.refresh_from_db()
    alice.channel.app_secret = APP_SECRET
    ChannelAccount.objects.bulk_update([alice.channel], ["app_secret"])

    raw = stored_secrets(alice.channel.pk)
    assert_encrypted(raw["verify_token"], VERIFY_TOKEN)
    assert_encrypted(raw["app_secret"], APP_SECRET)
    assert ChannelAccount.objects.get(pk=alice.channel.pk).app_secret == APP_SECRET


def test_equal_secrets_are_stored_as_different_tokens(alice, bob):
    for tenant in (alice, bob):
        ChannelAccount.objects.filter(pk=tenant.channel.pk).update(app_secret=APP_SECRET)

    assert stored_secrets(alice.channel.pk)["app_secret"] != stored_secrets(bob.channel.pk)["app_secret"]


def test_encrypted_fields_refuse_comparisons_that_could_never_match(alice):
    with pytest.raises(FieldError, match="verify_token is encrypted"):
        list(ChannelAccount.objects.filter(verify_token=VERIFY_TOKEN))
    with pytest.raises(FieldError, match="Unsupported lookup 'startswith'"):
        list(ChannelAccount.objects.filter(access_token__startswith="EAAG"))
    # Set or not set is answerable.
    assert ChannelAccount.objects.exclude(access_token="").count() == 1
    assert ChannelAccount.objects.filter(verify_token="").count() == 1


# --- keys -----------------------------------------------------------------------------


def test_a_secret_no_listed_key_opens_is_a_clear_error_not_an_empty_secret(alice):
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY]),
        pytest.raises(DecryptionError, match=r"ChannelAccount\.access_token cannot be decrypted"),
    ):
        ChannelAccount.objects.get(pk=alice.channel.pk)


def test_plaintext_left_in_the_column_is_a_clear_error(alice):
    ChannelAccount.objects.filter(pk=alice.channel.pk).update(app_secret=stored("plain-old-secret"))

    with pytest.raises(DecryptionError, match="not ciphertext"):
        ChannelAccount.objects.get(pk=alice.channel.pk)


def test_saving_a_secret_without_a_key_is_a_clear_error(alice):
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[]),
        pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS must be set"),
    ):
        ChannelAccount.objects.filter(pk=alice.channel.pk).update(access_token=TOKEN)


def test_new_secrets_use_the_newest_key_and_older_keys_still_decrypt(alice):
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY, TEST_KEY]):
        assert ChannelAccount.objects.get(pk=alice.channel.pk).access_token == alice.channel.access_token
        ChannelAccount.objects.filter(pk=alice.channel.pk).update(verify_token=VERIFY_TOKEN)

    assert_encrypted(stored_secrets(alice.channel.pk)["verify_token"], VERIFY_TOKEN, key=NEW_KEY)


def reencrypt(*args: str) -> str:
    out = StringIO()
    call_command("reencrypt_secrets", *args, stdout=out)
    return out.getvalue()


def test_reencrypt_secrets_moves_every_secret_to_the_newest_key(alice, bob):
    plain = {t.channel.pk: (t.channel.access_token, t.channel.app_secret) for t in (alice, bob)}

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY, TEST_KEY]):
        first = reencrypt("--batch-size", "1")
        after_first = {pk: stored_secrets(pk) for pk in plain}
        second = reencrypt()

    assert "Re-encrypted 4 secret(s) under the newest key; 0 already were" in first
    assert "Re-encrypted 0 secret(s) under the newest key; 4 already were" in second
    assert {pk: stored_secrets(pk) for pk in plain} == after_first  # the second run wrote nothing
    for pk, (token, secret) in plain.items():
        assert_encrypted(after_first[pk]["access_token"], token, key=NEW_KEY)
        assert_encrypted(after_first[pk]["app_secret"], secret, key=NEW_KEY)
    # The old key can go now.
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY]):
        assert {
            a.pk: (a.access_token, a.app_secret) for a in ChannelAccount.objects.filter(pk__in=plain)
        } == plain


def test_reencrypt_secrets_names_the_values_no_key_opens_and_rotates_the_rest(alice, bob):
    lost = Fernet(UNLISTED_KEY).encrypt(b"lost-secret").decode()
    ChannelAccount.objects.filter(pk=bob.channel.pk).update(app_secret=stored(lost))

    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY, TEST_KEY]),
        pytest.raises(CommandError, match=f"channels_app.ChannelAccount {bob.channel.pk} app_secret"),
    ):
        reencrypt()

    assert_encrypted(stored_secrets(alice.channel.pk)["app_secret"], alice.channel.app_secret, key=NEW_KEY)
    assert_encrypted(stored_secrets(bob.channel.pk)["access_token"], bob.channel.access_token, key=NEW_KEY)
    assert stored_secrets(bob.channel.pk)["app_secret"] == lost


def test_reencrypt_secrets_without_a_key_says_so(alice):
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[]),
        pytest.raises(CommandError, match="FIELD_ENCRYPTION_KEYS must be set"),
    ):
        reencrypt()
