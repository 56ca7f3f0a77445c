"""An old database with clear-text channel secrets is encrypted in place by the migration, and back."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from channels_app.models import ChannelAccount
from tests.channels.test_secret_encryption import assert_encrypted, stored_secrets

# Schema changes on SQLite cannot run inside the test's transaction.
pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("channels_app", "0004_channel_account_ownership")]
ENCRYPTED = [("channels_app", "0005_encrypt_channel_secrets")]
LONG_SECRET = "s" * 255  # the old column's limit; its token is far longer


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


@pytest.fixture
def old_schema():
    """channels_app at 0004 (clear-text columns) for the test, the latest schema afterwards."""
    executor = migrate(BEFORE)
    yield executor.loader.project_state(BEFORE).apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_migration_encrypts_clear_secrets_in_place_and_reverses(alice, old_schema):
    # Migrating back decrypted the fixture's account (written encrypted at the latest schema).
    assert stored_secrets(alice.channel.pk) == {
        "access_token": alice.channel.access_token,
        "app_secret": alice.channel.app_secret,
        "verify_token": "",
    }
    old = old_schema.get_model("channels_app", "ChannelAccount").objects.create(
        business_id=alice.business.pk,
        kind="messenger",
        external_id="102938475610293",
        name="Old page",
        access_token="EAAG-written-in-clear",
        app_secret=LONG_SECRET,
        verify_token="clear-verify-token",
    )

    migrate(ENCRYPTED)

    raw = stored_secrets(old.pk)
    assert_encrypted(raw["access_token"], "EAAG-written-in-clear")
    assert_encrypted(raw["app_secret"], LONG_SECRET)
    assert len(raw["app_secret"]) > 255
    assert_encrypted(raw["verify_token"], "clear-verify-token")
    assert_encrypted(stored_secrets(alice.channel.pk)["access_token"], alice.channel.access_token)
    assert stored_secrets(alice.channel.pk)["verify_token"] == ""
    account = ChannelAccount.objects.get(pk=old.pk)
    assert (account.access_token, account.app_secret, account.verify_token) == (
        "EAAG-written-in-clear",
        LONG_SECRET,
        "clear-verify-token",
    )

    migrate(BEFORE)

    assert stored_secrets(old.pk) == {
        "access_token": "EAAG-written-in-clear",
        "app_secret": LONG_SECRET,
        "verify_token": "clear-verify-token",
    }


def test_without_a_key_the_migration_stops_with_a_clear_error_and_changes_nothing(alice, old_schema):
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[]),
        pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS must be set"),
    ):
        migrate(ENCRYPTED)

    assert stored_secrets(alice.channel.pk)["access_token"] == alice.channel.access_token
    assert ("channels_app", "0005_encrypt_channel_secrets") not in MigrationExecutor(
        connection
    ).recorder.applied_migrations()


def test_the_migration_leaves_values_already_encrypted_alone(alice, old_schema):
    token = Fernet(settings.FIELD_ENCRYPTION_KEYS[0]).encrypt(b"already-encrypted").decode()
    old_schema.get_model("channels_app", "ChannelAccount").objects.filter(pk=alice.channel.pk).update(
        verify_token=token
    )

    migrate(ENCRYPTED)

    assert stored_secrets(alice.channel.pk)["verify_token"] == token
    assert ChannelAccount.objects.get(pk=alice.channel.pk).verify_token == "already-encrypted"
