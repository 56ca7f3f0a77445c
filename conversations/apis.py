"""REST API for contacts, conversations, transcripts and the LLM call ledger.

Thin doors: every queryset comes from a selector scoped to the caller's
business, every write goes through a service.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from conversations.filters import ContactFilter, ConversationFilter, LLMCallFilter
from conversations.models import Contact, Conversation, LLMCall, Message
from conversations.selectors import contact_list, conversation_list, llm_call_list, message_list
from conversations.serializers import (
    ContactSerializer,
    ConversationSerializer,
    LLMCallDetailSerializer,
    LLMCallSerializer,
    MessageSerializer,
    PauseAISerializer,
    ResumeAISerializer,
    StaffReplySerializer,
)
from conversations.services import (
    contact_update,
    conversation_ai_pause,
    conversation_ai_resume,
    conversation_staff_reply,
)
from icmp.api.pagination import ActivityCursorPagination, TranscriptCursorPagination


def _schema_only(view) -> bool:
    return getattr(view, "swagger_fake_view", False)


def _acting_user(request: Request) -> AbstractBaseUser | None:
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


@extend_schema_view(
    list=extend_schema(tags=["contacts"], summary="List contacts, newest first"),
    retrieve=extend_schema(tags=["contacts"], summary="Get a contact"),
    partial_update=extend_schema(tags=["contacts"], summary="Rename a contact"),
)
class ContactViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    serializer_class = ContactSerializer
    access_model = Contact._meta.label_lower
    filterset_class = ContactFilter
    lookup_value_converter = "uuid"
    queryset = Contact.objects.none()
    # Contacts come from the channels; only the name is editable.
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Contact]:
        if _schema_only(self):
            return Contact.objects.none()
        return contact_list(business=self.request.auth.business)

    def perform_update(self, serializer: ContactSerializer) -> None:
        name = serializer.validated_data.get("name", serializer.instance.name)
        serializer.instance = contact_update(contact=serializer.instance, name=name)


@extend_schema_view(
    list=extend_schema(
        tags=["conversations"],
        summary="List conversations, most recent activity first",
    ),
    retrieve=extend_schema(tags=["conversations"], summary="Get a conversation"),
)
class ConversationViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ConversationSerializer
    access_model = Conversation._meta.label_lower
    access_actions = {"pause_ai": "change", "resume_ai": "change"}
    filterset_class = ConversationFilter
    lookup_value_converter = "uuid"
    pagination_class = ActivityCursorPagination
    queryset = Conversation.objects.none()

    def get_queryset(self) -> QuerySet[Conversation]:
        if _schema_only(self):
            return Conversation.objects.none()
        return conversation_list(business=self.request.auth.business)

    def filter_queryset(self, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        # List filters narrow lists; they must not turn a detail lookup into a 404.
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)

    @extend_schema(
        tags=["conversations"],
        summary="Pause the AI",
        description="Staff take over: the AI stops answering. Pausing a paused conversation "
        "changes nothing (its reason is kept). Viewers may not.",
        request=PauseAISerializer,
        responses={200: ConversationSerializer, 400: OpenApiResponse(description="Invalid input")},
    )
    @action(detail=True, methods=["post"], url_path="pause-ai")
    def pause_ai(self, request: Request, pk: str | None = None) -> Response:
        conversation = self.get_object()
        body = PauseAISerializer(data=request.data)
        body.is_valid(raise_exception=True)
        conversation = conversation_ai_pause(
            conversation=conversation,
            reason=body.validated_data.get("reason", ""),
            by=_acting_user(request),
        )
        return Response(ConversationSerializer(conversation).data)

    @extend_schema(
        tags=["conversations"],
        summary="Resume the AI",
        description="The AI answers again; needs_human and handoff_reason are cleared. Idempotent.",
        request=None,
        responses={200: ConversationSerializer, 400: OpenApiResponse(description="Invalid input")},
    )
    @action(detail=True, methods=["post"], url_path="resume-ai")
    def resume_ai(self, request: Request, pk: str | None = None) -> Response:
        conversation = self.get_object()
        ResumeAISerializer(data=request.data).is_valid(raise_exception=True)
        conversation = conversation_ai_resume(conversation=conversation)
        return Response(ConversationSerializer(conversation).data)


@extend_schema_view(
    get=extend_schema(
        tags=["conversations"],
        summary="The conversation's transcript, oldest first",
    ),
    post=extend_schema(
        tags=["conversations"],
        summary="Reply as staff",
        description="Stores the reply (queued) and sends it through the conversation's channel "
        "after commit, like any reply; the AI is paused on this conversation. Viewers may not.",
        request=StaffReplySerializer,
        responses={
            201: MessageSerializer,
            400: OpenApiResponse(description="Invalid input"),
            403: OpenApiResponse(description="Read-only role"),
            404: OpenApiResponse(description="No such conversation in your business"),
        },
    ),
)
class ConversationMessageListApi(generics.ListAPIView):
    serializer_class = MessageSerializer
    # Replying is staff acting on the conversation (the AI is paused), like the inbox's reply.
    access_model = Conversation._meta.label_lower
    access_actions = {"post": "change"}
    pagination_class = TranscriptCursorPagination
    filter_backends: list = []
    queryset = Message.objects.none()

    def _conversation(self) -> Conversation:
        return get_object_or_404(
            conversation_list(business=self.request.auth.business), pk=self.kwargs["conversation_id"]
        )

    def get_queryset(self) -> QuerySet[Message]:
        if _schema_only(self):
            return Message.objects.none()
        return message_list(conversation=self._conversation())

    def post(self, request: Request, conversation_id: str) -> Response:
        conversation = self._conversation()
        body = StaffReplySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message = conversation_staff_reply(
            conversation=conversation, text=body.validated_data["text"], user=_acting_user(request)
        )
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        tags=["llm-calls"],
        summary="List LLM calls, newest first",
        description="Prompts and responses are left out of the list; get one call for them.",
    ),
    retrieve=extend_schema(tags=["llm-calls"], summary="Get an LLM call with its prompt and response"),
)
class LLMCallViewSet(viewsets.ReadOnlyModelViewSet):
    access_model = LLMCall._meta.label_lower
    filterset_class = LLMCallFilter
    lookup_value_converter = "uuid"
    queryset = LLMCall.objects.none()

    def get_serializer_class(self) -> type[LLMCallSerializer] | type[LLMCallDetailSerializer]:
        return LLMCallDetailSerializer if self.action == "retrieve" else LLMCallSerializer

    def get_queryset(self) -> QuerySet[LLMCall]:
        if _schema_only(self):
            return LLMCall.objects.none()
        return llm_call_list(business=self.request.auth.business, with_payloads=self.action == "retrieve")

    def filter_queryset(self, queryset: QuerySet[LLMCall]) -> QuerySet[LLMCall]:
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)
