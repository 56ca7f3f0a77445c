"""URL configuration: admin, operations, webhooks and the REST API."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from icmp import health, metrics
from icmp.api import schema as _schema_extensions  # noqa: F401  (registers auth schemes)

urlpatterns = [
    path("ping", health.ping, name="ping"),
    path("health", health.health, name="health"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("icmp.api.urls")),
    path("webhooks/", include("conversations.inbound.urls")),
]

handler400 = "icmp.api.errors.json_400"
handler403 = "icmp.api.errors.json_403"
handler404 = "icmp.urls.not_found"
handler500 = "icmp.urls.server_error"


def not_found(request, exception=None):
    """JSON under /api/ and /webhooks/, Django's page elsewhere (the admin)."""
    from django.views.defaults import page_not_found

    from icmp.api.errors import json_404

    if request.path.startswith(("/api/", "/webhooks/")):
        return json_404(request, exception)
    return page_not_found(request, exception)


def server_error(request):
    from django.views.defaults import server_error as django_server_error

    from icmp.api.errors import json_500

    if request.path.startswith(("/api/", "/webhooks/")):
        return json_500(request)
    return django_server_error(request)
