"""REST routes of the stages app."""

from rest_framework.routers import SimpleRouter

from stages.apis import StageViewSet

router = SimpleRouter(use_regex_path=False)
router.register("stages", StageViewSet, basename="stage")

urlpatterns = router.urls
