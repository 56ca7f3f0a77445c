"""`Business.config_version`: bumped by every write of what a turn caches about a business.

A turn caches each business's stages, templates, AI settings and agents under
a key that names this version (`conversations/pipeline/context_reader.py`),
and reads the version afresh with the conversation on every turn, so a write
here is seen by the very next turn and no cache entry is ever deleted.

Every way those rows change bumps it, in the transaction of the write:

- a save or a delete of a Stage, a PromptTemplate, an Agent, the AI control
  settings or the Business itself (the services, the admin, the history
  pages' revert, which saves the old version): `post_save` / `post_delete`;
- `update()`, `bulk_create()` and `bulk_update()` on their querysets, which
  send no signal: `ConfigQuerySet` bumps the businesses of the rows it wrote;
- a platform template (no business) is used by every business: all bump.

Raw SQL and data migrations bypass all this; the cache entries also expire
(TURN_CONFIG_CACHE_SECONDS), so such an edit is seen within that time.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import F
from django.db.models.signals import post_delete, post_save

# The models whose rows a turn caches, and the field naming their business.
CONFIG_MODELS = {
    "businesses.Business": "id",
    "businesses.Agent": "business_id",
    "businesses.AIControlSettings": "business_id",
    "stages.Stage": "business_id",
    "templates_app.PromptTemplate": "business_id",  # None: a platform template
}
ALL = object()  # "every business": a platform template changed


def business_config_bump(*, business_ids: Any) -> None:
    """Bump the config version of these businesses (an iterable of ids, or ALL)."""
    from businesses.models import Business

    if business_ids is ALL:
        models.QuerySet(Business).update(config_version=F("config_version") + 1)
        return
    ids = {business_id for business_id in business_ids if business_id is not None}
    if ids:
        models.QuerySet(Business).filter(pk__in=ids).update(config_version=F("config_version") + 1)


def _businesses_of(model: type[models.Model], instances_or_ids: Any) -> Any:
    """The business ids of rows of `model` (ALL when a platform template is among them)."""
    label = model._meta.label
    attname = CONFIG_MODELS[label]
    ids = {getattr(row, attname) if isinstance(row, models.Model) else row for row in instances_or_ids}
    if label == "templates_app.PromptTemplate" and None in ids:
        return ALL
    return ids


class ConfigQuerySet(models.QuerySet):
    """The queryset of a model a turn caches: its bulk writes bump the config version too."""

    def update(self, **kwargs: Any) -> int:
        attname = CONFIG_MODELS[self.model._meta.label]
        if attname == "id":  # Business itself: the same statement bumps it
            kwargs.setdefault("config_version", F("config_version") + 1)
            return super().update(**kwargs)
        # Read before the write: the update may change what the filter matches.
        owners = list(self.values_list(attname, flat=True).distinct())
        count = super().update(**kwargs)
        if count:
            business_config_bump(business_ids=_businesses_of(self.model, owners))
        return count

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        created = super().bulk_create(objs, *args, **kwargs)
        if created:
            business_config_bump(business_ids=_businesses_of(self.model, created))
        return created

    def bulk_update(self, objs: Any, fields: Any, *args: Any, **kwargs: Any) -> int:
        objs = list(objs)
        count = super().bulk_update(objs, fields, *args, **kwargs)
        if count:
            business_config_bump(business_ids=_businesses_of(self.model, objs))
        return count


def _changed(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata: the fixture brings its own versions
        return
    if sender._meta.label == "businesses.Business":
        if kwargs.get("signal") is post_delete or kwargs.get("created"):
            return  # nothing of a new or deleted business is cached
        business_config_bump(business_ids=[instance.pk])
        return
    business_config_bump(business_ids=_businesses_of(sender, [instance]))


def signals_connect() -> None:
    """Called from BusinessesConfig.ready(): the senders are named, so no app imports another."""
    for label in CONFIG_MODELS:
        post_save.connect(_changed, sender=label, dispatch_uid=f"config-version-save-{label}")
        post_delete.connect(_changed, sender=label, dispatch_uid=f"config-version-delete-{label}")
