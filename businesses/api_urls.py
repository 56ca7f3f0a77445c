"""REST routes of this app: auth check, the caller's business, agents, API keys, platform."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from businesses import apis

router = SimpleRouter(use_regex_path=False)
router.register("agents", apis.AgentViewSet, basename="agent")
router.register("api-keys", apis.APIKeyViewSet, basename="api-key")
router.register("businesses", apis.PlatformBusinessViewSet, basename="platform-business")

urlpatterns = [
    path("auth/check/", apis.AuthCheckApi.as_view(), name="auth-check"),
    path("business/", apis.BusinessApi.as_view(), name="business"),
    path("business/ai-settings/", apis.AISettingsApi.as_view(), name="business-ai-settings"),
    *router.urls,
]
