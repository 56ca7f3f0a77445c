"""Stages of a business's conversations and the JSON Schema of what each collects."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from businesses.config_version import ConfigQuerySet
from icmp.db import BaseModel


class Stage(BaseModel):
    business = models.ForeignKey("businesses.Business", on_delete=models.CASCADE, related_name="stages")
    key = models.SlugField(max_length=64, help_text="Stable identifier the stage selector answers with.")
    name = models.CharField(max_length=120)
    description = models.TextField(
        blank=True, help_text="When this stage applies; the stage selector reads it."
    )
    order = models.PositiveIntegerField(default=0)
    is_initial = models.BooleanField(default=False)
    is_handoff = models.BooleanField(
        default=False, help_text="Entering this stage hands the conversation to staff."
    )
    data_schema = models.JSONField(
        default=dict, blank=True, help_text="JSON Schema of the data this stage collects."
    )
    selection_template = models.ForeignKey(
        "templates_app.PromptTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"kind": "stage_selection"},
    )
    extraction_template = models.ForeignKey(
        "templates_app.PromptTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"kind": "data_extraction"},
    )
    response_template = models.ForeignKey(
        "templates_app.PromptTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"kind": "response_generation"},
    )
    history = HistoricalRecords(excluded_fields=["updated_at"])

    # Bulk writes bump the business's config version too (a turn caches these rows).
    objects = ConfigQuerySet.as_manager()

    class Meta:
        ordering = ["order", "key"]
        constraints = [
            models.UniqueConstraint(fields=["business", "key"], name="stage_unique_key"),
            # The conversation starts in the initial stage; there is at most one.
            models.UniqueConstraint(
                fields=["business"], condition=Q(is_initial=True), name="stage_one_initial"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"
