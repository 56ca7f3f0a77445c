"""Abstract model bases shared by every app."""

from __future__ import annotations

from django.db import models

from icmp.ids import uuid7


class BaseModel(models.Model):
    """UUID (v7) public id plus creation and update times."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
