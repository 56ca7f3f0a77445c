"""REST routes of this app."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from conversations.apis import (
    ContactViewSet,
    ConversationMessageListApi,
    ConversationViewSet,
    LLMCallViewSet,
)
from conversations.channel_api import ChannelApiMessageApi
from conversations.usage_api import UsageApi

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
    path("channels/api/messages/", ChannelApiMessageApi.as_view(), name="channel-api-messages"),
    path("usage/", UsageApi.as_view(), name="usage"),
    *router.urls,
]
