"""A text field stored encrypted (icmp.crypto), read back as plain text.

Code keeps reading and assigning plain strings; the column holds a Fernet
token. Empty stays empty, so whether a secret is set can be answered (and
filtered on) without a key. A token is different every time the same value is
encrypted, so no other comparison can work in SQL: such lookups raise instead
of silently matching nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldError
from django.db import DatabaseError, models, transaction
from django.db.models.functions import Cast
from django.db.models.lookups import Exact, IsNull

from icmp import crypto


class _EmptyOnlyExact(Exact):
    def get_prep_lookup(self):
        if not isinstance(self.rhs, str) or self.rhs != "":
            raise FieldError(
                f"{self.lhs.output_field.name} is encrypted: it can only be compared with '' "
                "(each encryption of a value differs, so an equality test in SQL never matches)."
            )
        return super().get_prep_lookup()


class EncryptedTextField(models.TextField):
    """Encrypted with the newest FIELD_ENCRYPTION_KEYS key on save, decrypted on load.

    `max_length` only limits form input (as for any TextField); the token is
    about 1.4 times the value plus 100 characters.
    """

    description = "Text encrypted at rest"

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return crypto.encrypt(value)

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return crypto.decrypt(value, what=self._label())

    def get_lookup(self, lookup_name):
        if lookup_name == "exact":
            return _EmptyOnlyExact
        if lookup_name == "isnull":
            return IsNull
        return None  # Django answers "Unsupported lookup … for EncryptedTextField"

    def get_transform(self, lookup_name):
        return None

    def _label(self) -> str:
        model = getattr(self, "model", None)
        return f"{model._meta.label}.{self.name}" if model is not None else self.name


# --- Raw access: the stored token, neither decrypted nor re-encrypted ---------------------


def raw(name: str) -> Cast:
    """The column as stored, for .annotate(): a plain TextField has no from_db_value."""
    return Cast(name, output_field=models.TextField())


def stored(token: str) -> models.Value:
    """A value for .update() written as is: a plain TextField output has no encryption."""
    return models.Value(token, output_field=models.TextField())


def encrypted_field_names(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]


def encrypted_models() -> Iterator[tuple[type[models.Model], list[str]]]:
    for model in apps.get_models():
        names = encrypted_field_names(model)
        if names:
            yield model, names


def secrets_stored() -> bool:
    """Whether any encrypted field holds a value (False when the tables do not exist yet)."""
    for model, names in encrypted_models():
        query = models.Q()
        for name in names:
            query |= ~models.Q(**{name: ""})
        try:
            if model._default_manager.filter(query).exists():
                return True
        except DatabaseError:  # not migrated yet: nothing stored
            return False
    return False


def rewrite_stored(
    model: type[models.Model],
    names: list[str],
    rewrite: Callable[[Any, str, str], str | None],
    *,
    batch_size: int = 500,
) -> int:
    """Pass every non-empty stored value through `rewrite(pk, field name, token)`.

    A returned string is written as is (None leaves the value alone). Rows go
    in primary-key batches, each in a transaction with its rows locked until
    written back, so a concurrent save is never overwritten with a stale value.
    Works on historical models too (migrations). Returns the values written.
    """
    aliases = {f"_stored_{name}": raw(name) for name in names}
    written = 0
    last = None
    while True:
        queryset = model._base_manager.order_by("pk")
        if last is not None:
            queryset = queryset.filter(pk__gt=last)
        with transaction.atomic():
            rows = list(queryset.select_for_update().annotate(**aliases).values("pk", *aliases)[:batch_size])
            for row in rows:
                changes = {}
                for name in names:
                    token = row[f"_stored_{name}"]
                    if token and (new := rewrite(row["pk"], name, token)) is not None:
                        changes[name] = stored(new)
                if changes:
                    model._base_manager.filter(pk=row["pk"]).update(**changes)
                    written += len(changes)
        if len(rows) < batch_size:
            return written
        last = rows[-1]["pk"]


@dataclass
class ReencryptResult:
    rotated: int = 0
    current: int = 0
    failed: list[str] = field(default_factory=list)  # "<model label> <pk> <field>" per value


def reencrypt_all(*, batch_size: int = 500) -> ReencryptResult:
    """Move every encrypted value onto the newest key; values already under it are left alone."""
    crypto.keyring()  # a missing or malformed key fails before any row is touched
    result = ReencryptResult()
    for model, names in encrypted_models():

        def rewrite(pk: Any, name: str, token: str, label: str = model._meta.label) -> str | None:
            if crypto.is_current(token):
                result.current += 1
                return None
            try:
                rotated = crypto.rotate(token)
            except crypto.DecryptionError:
                result.failed.append(f"{label} {pk} {name}")
                return None
            result.rotated += 1
            return rotated

        rewrite_stored(model, names, rewrite, batch_size=batch_size)
    return result
