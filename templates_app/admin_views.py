"""Admin pages shared by prompt templates and stages: version diffs, one-click revert,
and the preview playground.

`VersionedAdminMixin` goes before `TenantHistoryAdmin` in a model admin. Every
page looks the object up with the admin's scoped `get_object` (another
tenant's id is a 404), viewers read, and only the business's editors revert
or run dry turns (a dry run spends tokens). The views live in `admin_history`
and `admin_playground`; this mixin holds the hooks, templates and urls.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.http import HttpRequest
from django.urls import path, reverse

from templates_app.admin_history import (
    DiffField,
    FieldChange,
    VersionHistoryViews,
    text_diff_html,
    version_changes,
)
from templates_app.admin_playground import PLAYGROUND_CONVERSATION_CHOICES, PlaygroundForm, PlaygroundViews


class VersionedAdminMixin(VersionHistoryViews, PlaygroundViews):
    """History with diffs and revert, and the playground, for a tenant history admin."""

    diff_fields: tuple[DiffField, ...] = ()
    object_history_template = "admin/templates_app/object_history.html"
    object_history_form_template = "admin/templates_app/object_history_form.html"
    history_compare_template = "admin/templates_app/history_compare.html"
    playground_template = "admin/templates_app/playground.html"

    # -- hooks -------------------------------------------------------------------------

    def version_restore(self, *, request: HttpRequest, obj: Model, record: Model) -> Model:
        """Write `record`'s values back through the services (a new version)."""
        raise NotImplementedError

    def playground_target(self, obj: Model) -> dict[str, Any]:
        """`template=` or `stage=` for the playground service."""
        raise NotImplementedError

    def version_links(self, obj: Model, record: Model) -> list[tuple[str, str]]:
        """Extra (label, url) links on a version page."""
        return []

    # -- urls --------------------------------------------------------------------------

    def _url_name(self, view: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def _admin_url(self, view: str, *args: Any) -> str:
        return reverse(f"{self.admin_site.name}:{self._url_name(view)}", args=args)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/history-compare/",
                wrap(self.history_compare_view),
                name=self._url_name("history_compare"),
            ),
            path(
                "<path:object_id>/history/<int:history_id>/revert/",
                wrap(self.history_revert_view),
                name=self._url_name("history_revert"),
            ),
            path(
                "<path:object_id>/playground/", wrap(self.playground_view), name=self._url_name("playground")
            ),
            *super().get_urls(),
        ]


__all__ = [
    "PLAYGROUND_CONVERSATION_CHOICES",
    "DiffField",
    "FieldChange",
    "PlaygroundForm",
    "VersionedAdminMixin",
    "text_diff_html",
    "version_changes",
]
