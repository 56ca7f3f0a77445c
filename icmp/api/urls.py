"""REST API v1 routes. Every route here is walked by the cross-tenant test."""

from django.urls import path
from rest_framework.routers import SimpleRouter

router = SimpleRouter(trailing_slash=True)

urlpatterns = [
    *router.urls,
]
