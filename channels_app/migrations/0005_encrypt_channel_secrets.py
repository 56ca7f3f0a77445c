# Channel secrets are encrypted at rest (icmp.fields.EncryptedTextField).
#
# The columns become text (a Fernet token is longer than 255 characters), then
# every stored plaintext is encrypted in place with the newest key in
# FIELD_ENCRYPTION_KEYS. Reversing decrypts them before the columns shrink back.
# A database with secrets and no key stops here with a clear error.

from django.db import migrations

import icmp.fields
from icmp import crypto

SECRET_FIELDS = ["access_token", "app_secret", "verify_token"]


def _encrypt(pk, name, value):
    # Already ciphertext under a configured key (a re-run after a partial failure): leave it.
    return None if crypto.opens(value) else crypto.encrypt(value)


def _decrypt(pk, name, value):
    return crypto.decrypt(value, what=f"ChannelAccount {pk} {name}")


def encrypt_secrets(apps, schema_editor):
    ChannelAccount = apps.get_model("channels_app", "ChannelAccount")
    icmp.fields.rewrite_stored(ChannelAccount, SECRET_FIELDS, _encrypt)


def decrypt_secrets(apps, schema_editor):
    ChannelAccount = apps.get_model("channels_app", "ChannelAccount")
    icmp.fields.rewrite_stored(ChannelAccount, SECRET_FIELDS, _decrypt)


class Migration(migrations.Migration):

    dependencies = [
        ("channels_app", "0004_channel_account_ownership"),
    ]

    operations = [
        migrations.AlterField(
            model_name="channelaccount",
            name="access_token",
            field=icmp.fields.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name="channelaccount",
            name="app_secret",
            field=icmp.fields.EncryptedTextField(blank=True, max_length=255),
        ),
        migrations.AlterField(
            model_name="channelaccount",
            name="verify_token",
            field=icmp.fields.EncryptedTextField(blank=True, max_length=255),
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets, elidable=False),
    ]
