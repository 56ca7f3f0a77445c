"""REST API v1 routes. Every route here is walked by the cross-tenant test.

Each app owns its routes in `<app>/api_urls.py`.
"""

from django.urls import include, path

urlpatterns = [
    path("", include("businesses.api_urls")),
    path("", include("stages.api_urls")),
    path("", include("templates_app.api_urls")),
    path("", include("channels_app.api_urls")),
    path("", include("conversations.api_urls")),
]
