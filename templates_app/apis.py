"""REST API for prompt templates: CRUD, version history and preview."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.apps import apps
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from businesses.models import Business
from icmp.errors import ApplicationError
from stages.selectors import stage_get, stage_initial_get, stage_list
from templates_app.models import PromptTemplate
from templates_app.prompt_data import business_prompt_data, stage_prompt_data, template_context_build
from templates_app.rendering import VARIABLES, TemplateRenderError, render, sample_context
from templates_app.selectors import agent_prompt_get, template_list, template_versions_list
from templates_app.serializers import (
    TemplatePreviewResultSerializer,
    TemplatePreviewSerializer,
    TemplateSerializer,
    TemplateVersionSerializer,
)
from templates_app.services import template_create, template_delete, template_update

_ERRORS = {
    400: OpenApiResponse(description="Invalid input: `error.details` names each field."),
    404: OpenApiResponse(description="No such template in your business."),
}
# Channels whose adapters can show quick-reply buttons.
QUICK_REPLY_CHANNELS = frozenset({"whatsapp", "messenger", "instagram"})


class TemplateVersionPagination(CursorPagination):
    ordering = ("-history_date", "-history_id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


@dataclass(frozen=True)
class PreviewConversation:
    """What a preview needs from a conversation, as plain data."""

    stage_id: UUID | None
    agent_id: UUID | None
    collected_data: dict[str, Any] = field(default_factory=dict)
    contact_name: str = ""
    channel: str = ""


def conversation_preview_get(*, business: Business, conversation_id: UUID) -> PreviewConversation | None:
    """The caller's conversation as plain data, or None.

    templates_app must not import conversations (dependencies point from
    conversations to here), so the model is looked up by name at call time
    and nothing but plain data leaves this function.
    """
    conversation_model = apps.get_model("conversations", "Conversation")
    row = (
        conversation_model.objects.filter(business=business, pk=conversation_id)
        .select_related("contact", "channel_account")
        .first()
    )
    if row is None:
        return None
    return PreviewConversation(
        stage_id=row.stage_id,
        agent_id=row.agent_id,
        collected_data=dict(row.collected_data or {}),
        contact_name=row.contact.name,
        channel=row.channel_account.kind,
    )


_include_platform = OpenApiParameter(
    "include_platform",
    OpenApiTypes.BOOL,
    description="Also list the platform's default templates (read-only).",
)


@extend_schema_view(
    list=extend_schema(summary="List templates", parameters=[_include_platform]),
    retrieve=extend_schema(
        summary="One template (yours, or a platform default)",
        responses={200: TemplateSerializer, 404: _ERRORS[404]},
    ),
    create=extend_schema(
        summary="Create a template",
        description="The content is checked in the sandbox: unknown variables, syntax errors and "
        "access to internals are refused (`invalid_template`), and so is a template that goes over one "
        "of the sandbox's limits on size and work, with the limit as the code (`loop_iterations_limit`, "
        "`value_size_limit`, `render_work_limit` …). `is_default` clears it on your other template of "
        "that kind.",
        responses={201: TemplateSerializer, 400: _ERRORS[400]},
    ),
    update=extend_schema(summary="Replace a template", responses={200: TemplateSerializer, **_ERRORS}),
    partial_update=extend_schema(
        summary="Change a template",
        description="`kind` cannot change. A new content raises `version` by one.",
        responses={200: TemplateSerializer, **_ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete a template",
        description="Stages that used it fall back to the defaults.",
        responses={204: None, 404: _ERRORS[404]},
    ),
)
class TemplateViewSet(viewsets.ModelViewSet):
    serializer_class = TemplateSerializer
    access_model = PromptTemplate._meta.label_lower
    # Previewing writes nothing, so viewers may do it too.
    access_actions = {"preview": "view"}
    lookup_value_converter = "uuid"
    filterset_fields = ["kind", "is_default"]
    conversation_lookup = staticmethod(conversation_preview_get)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PromptTemplate.objects.none()
        business = self.request.auth.business
        if self.action in ("update", "partial_update", "destroy"):
            # Platform defaults are readable but not the tenant's to change: 404.
            return template_list(business=business)
        if self.action == "list":
            return template_list(business=business, include_platform=self._include_platform())
        return template_list(business=business, include_platform=True)

    def _include_platform(self) -> bool:
        raw = self.request.query_params.get("include_platform")
        if raw is None:
            return False
        try:
            return serializers.BooleanField().to_internal_value(raw)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"include_platform": exc.detail})

    def perform_create(self, serializer: TemplateSerializer) -> None:
        serializer.instance = template_create(
            business=self.request.auth.business, **serializer.validated_data
        )

    def perform_update(self, serializer: TemplateSerializer) -> None:
        serializer.instance = template_update(template=serializer.instance, data=serializer.validated_data)

    def perform_destroy(self, instance: PromptTemplate) -> None:
        template_delete(template=instance)

    @extend_schema(
        summary="Version history of a template, newest first",
        responses={200: TemplateVersionSerializer(many=True), 404: _ERRORS[404]},
    )
    @action(detail=True, methods=["get"], pagination_class=TemplateVersionPagination, filter_backends=[])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        template = self.get_object()
        page = self.paginate_queryset(template_versions_list(template=template))
        return self.get_paginated_response(TemplateVersionSerializer(page, many=True).data)

    @extend_schema(
        summary="Render a template with your business's data",
        request=TemplatePreviewSerializer,
        responses={
            200: TemplatePreviewResultSerializer,
            400: OpenApiResponse(
                description="Invalid input, or the template fails to render (`render_error`, or the "
                "limit it went over as the code, e.g. `loop_iterations_limit`)."
            ),
            404: _ERRORS[404],
        },
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        template = self.get_object()
        body = TemplatePreviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if body.validated_data["sample"]:
            context = sample_context(template.kind)
        else:
            context = self._preview_context(
                kind=template.kind,
                conversation_id=body.validated_data.get("conversation"),
                stage_id=body.validated_data.get("stage"),
            )
        try:
            rendered = render(kind=template.kind, content=template.content, context=context)
        except TemplateRenderError as exc:
            raise ApplicationError(
                f"The template does not render: {exc}",
                code=exc.limit.code if exc.limit is not None else "render_error",
            )
        return Response(
            TemplatePreviewResultSerializer(
                {"rendered": rendered, "variables": list(VARIABLES[template.kind])}
            ).data
        )

    def _preview_context(self, *, kind: str, conversation_id: UUID | None, stage_id: UUID | None) -> dict:
        business = self.request.auth.business
        conversation = None
        if conversation_id is not None:
            conversation = self.conversation_lookup(business=business, conversation_id=conversation_id)
            if conversation is None:
                raise ApplicationError("Conversation not found.", code="not_found", field="conversation")
        if stage_id is not None:
            stage = stage_get(business=business, stage_id=stage_id)
            if stage is None:
                raise ApplicationError("Stage not found.", code="not_found", field="stage")
        elif conversation is not None and conversation.stage_id is not None:
            stage = stage_get(business=business, stage_id=conversation.stage_id)
        else:
            stage = stage_initial_get(business=business)
        return template_context_build(
            kind=kind,
            business=business_prompt_data(business=business),
            agent=agent_prompt_get(
                business=business, agent_id=conversation.agent_id if conversation else None
            ),
            stage=stage_prompt_data(stage=stage),
            stages=[stage_prompt_data(stage=s) for s in stage_list(business=business)],
            collected_data=conversation.collected_data if conversation else None,
            contact={"name": conversation.contact_name, "channel": conversation.channel}
            if conversation
            else None,
            quick_replies_allowed=bool(conversation and conversation.channel in QUICK_REPLY_CHANNELS),
        )
