"""Prompt templates: three kinds, tenant-owned or platform defaults, versioned."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from businesses.config_version import ConfigQuerySet
from icmp.db import BaseModel
from templates_app.kinds import TemplateKind


class PromptTemplate(BaseModel):
    """A Jinja2 template rendered in a sandbox (see `templates_app.rendering`).

    `business` is null for platform defaults (seeded by `manage.py
    seed_templates`). A stage without its own template falls back to the
    business default of that kind, then to the platform default.
    """

    business = models.ForeignKey(
        "businesses.Business",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="templates",
        help_text="Empty for platform defaults.",
    )
    kind = models.CharField(max_length=32, choices=TemplateKind.choices)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    content = models.TextField()
    is_default = models.BooleanField(
        default=False, help_text="Used by stages of this business that name no template of this kind."
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    # Bulk writes bump the business's config version too (a turn caches these rows).
    objects = ConfigQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=TemplateKind.values), name="template_kind_valid"),
            models.UniqueConstraint(fields=["business", "kind", "name"], name="template_unique_name"),
            models.UniqueConstraint(
                fields=["kind", "name"],
                condition=Q(business__isnull=True),
                name="template_platform_unique_name",
            ),
            # At most one default per kind for a business, and one platform default per kind.
            models.UniqueConstraint(
                fields=["business", "kind"],
                condition=Q(is_default=True),
                name="template_one_business_default",
            ),
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(is_default=True, business__isnull=True),
                name="template_one_platform_default",
            ),
        ]

    def __str__(self) -> str:
        owner = self.business.name if self.business_id else "platform"
        return f"{self.name} [{self.get_kind_display()}, {owner}] v{self.version}"

    @property
    def is_platform(self) -> bool:
        return self.business_id is None
