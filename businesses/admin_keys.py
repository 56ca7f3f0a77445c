"""A key made in the admin is shown once, on the page that answers the form that made it.

Only a hash of a key is stored, so the plaintext exists for one response. It
must not travel as a message: Django's message storage keeps notices in a
signed cookie, readable by anything that sees the cookie. The page is marked
no-store so neither the browser nor a proxy keeps a copy; a reload re-posts
the form (the browser asks first) and would make a new key, never show this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from businesses.models import Business

_REQUEST_ATTR = "_icmp_new_api_key"


@dataclass(frozen=True)
class NewKey:
    business: Business
    raw_key: str
    name: str = ""


def new_key_remember(request: HttpRequest, *, business: Business, raw_key: str, name: str = "") -> None:
    """Keeps the key on this request only, for the response of the same request."""
    setattr(request, _REQUEST_ATTR, NewKey(business=business, raw_key=raw_key, name=name))


class NewKeyPageMixin:
    """For a ModelAdmin whose add form makes a key: answers the add with the key page."""

    def response_add(self, request: HttpRequest, obj, post_url_continue=None) -> HttpResponse:
        new_key: NewKey | None = getattr(request, _REQUEST_ATTR, None)
        if new_key is None:
            return super().response_add(request, obj, post_url_continue)  # type: ignore[misc]
        opts = self.model._meta  # type: ignore[attr-defined]
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "opts": opts,
            "title": "Copy the new API key",
            "new_key": new_key,
            "object_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]),
            "keys_url": reverse("admin:businesses_apikey_changelist")
            + f"?business__id__exact={new_key.business.pk}",
        }
        response = TemplateResponse(request, "admin/businesses/new_api_key.html", context)
        add_never_cache_headers(response)
        return response
