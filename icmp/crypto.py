"""Secrets at rest: Fernet tokens under the keys in FIELD_ENCRYPTION_KEYS.

The setting lists keys newest first. New values are encrypted with the first
one; every listed key can still decrypt, so a new key is added in front and an
old one is dropped only after `manage.py reencrypt_secrets` has moved every
value onto the newest key (cryptography's MultiFernet does both halves).
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

GENERATE_HINT = (
    "Generate a key with: python -c "
    '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
MISSING_KEYS = "FIELD_ENCRYPTION_KEYS must be set: channel secrets are encrypted at rest with it."


class DecryptionError(Exception):
    """A stored value that none of the configured keys opens (wrong key, or not ciphertext)."""


def configured_keys() -> tuple[str, ...]:
    return tuple(key.strip() for key in getattr(settings, "FIELD_ENCRYPTION_KEYS", ()) if key.strip())


@lru_cache(maxsize=8)
def _keyring(keys: tuple[str, ...]) -> tuple[Fernet, MultiFernet]:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            # Never echo the value: it is a key, or something close to one.
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry #{position} is not a Fernet key "
                f"(32 url-safe base64-encoded bytes). {GENERATE_HINT}"
            ) from None
    return fernets[0], MultiFernet(fernets)


def keyring() -> tuple[Fernet, MultiFernet]:
    """(newest key, all keys); ImproperlyConfigured when none is set or one is malformed."""
    keys = configured_keys()
    if not keys:
        raise ImproperlyConfigured(f"{MISSING_KEYS} {GENERATE_HINT}")
    # Keyed by the keys themselves, so override_settings in tests needs no cache reset.
    return _keyring(keys)


def encrypt(plaintext: str) -> str:
    return keyring()[1].encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str, *, what: str = "a stored secret") -> str:
    try:
        return keyring()[1].decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise DecryptionError(
            f"{what} cannot be decrypted with FIELD_ENCRYPTION_KEYS: the key that encrypted it "
            "is not listed (keep an old key after the new one until `manage.py reencrypt_secrets` "
            "has run), or the stored value is not ciphertext."
        ) from None


def is_current(token: str) -> bool:
    """Whether the newest key already opens `token` (nothing to rotate)."""
    try:
        keyring()[0].decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeError):
        return False
    return True


def opens(token: str) -> bool:
    """Whether any configured key opens `token`."""
    try:
        keyring()[1].decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeError):
        return False
    return True


def rotate(token: str, *, what: str = "a stored secret") -> str:
    """`token` re-encrypted under the newest key (its original timestamp kept)."""
    try:
        return keyring()[1].rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise DecryptionError(f"{what} cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS.") from None
