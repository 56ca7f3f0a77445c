"""REST routes of this app."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from channels_app.apis import ChannelAccountViewSet, PlatformChannelAccountApi

router = SimpleRouter(use_regex_path=False)
router.register("channel-accounts", ChannelAccountViewSet, basename="channel-account")

urlpatterns = [
    *router.urls,
    path(
        "businesses/<uuid:business_id>/channel-accounts/",
        PlatformChannelAccountApi.as_view(),
        name="platform-channel-account",
    ),
]
