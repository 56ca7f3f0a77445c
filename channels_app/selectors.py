"""Reads for channel accounts."""

from __future__ import annotations

from django.db.models import QuerySet

from businesses.models import Business
from channels_app.models import ChannelAccount


def channel_account_list(*, business: Business) -> QuerySet[ChannelAccount]:
    return ChannelAccount.objects.filter(business=business)


def channel_account_external_id_taken(
    *, kind: str, external_id: str, exclude_id: object | None = None
) -> bool:
    """Whether any tenant already routes (kind, external_id): webhooks need it unique."""
    taken = ChannelAccount.objects.filter(kind=kind, external_id=external_id)
    if exclude_id is not None:
        taken = taken.exclude(pk=exclude_id)
    return taken.exists()
