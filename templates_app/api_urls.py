"""REST routes of the templates app."""

from rest_framework.routers import SimpleRouter

from templates_app.apis import TemplateViewSet

router = SimpleRouter(use_regex_path=False)
router.register("templates", TemplateViewSet, basename="template")

urlpatterns = router.urls
