"""REST routes of this app."""

from rest_framework.routers import SimpleRouter

from channels_app.apis import ChannelAccountViewSet

router = SimpleRouter(use_regex_path=False)
router.register("channel-accounts", ChannelAccountViewSet, basename="channel-account")

urlpatterns = router.urls
