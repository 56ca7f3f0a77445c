"""REST routes of this app."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from conversations.apis import (
    ContactViewSet,
    ConversationMessageListApi,
    ConversationViewSet,
    LLMCallViewSet,
)

router = SimpleRouter(use_regex_path=False)
router.register("contacts", ContactViewSet, basename="contact")
router.register("conversations", ConversationViewSet, basename="conversation")
router.register("llm-calls", LLMCallViewSet, basename="llm-call")

urlpatterns = [
    path(
        "conversations/<uuid:conversation_id>/messages/",
        ConversationMessageListApi.as_view(),
        name="conversation-messages",
    ),
    *router.urls,
]
