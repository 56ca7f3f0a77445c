"""REST API for stages: thin doors onto stages.services and stages.selectors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets

from icmp.api.pagination import CreatedCursorPagination
from stages.models import Stage
from stages.selectors import stage_list
from stages.serializers import StageSerializer
from stages.services import stage_create, stage_delete, stage_update

_ERRORS = {
    400: OpenApiResponse(description="Invalid input: `error.details` names each field."),
    404: OpenApiResponse(description="No such stage in your business."),
}


class StagePagination(CreatedCursorPagination):
    # Stages read in conversation order; keys are unique per business, so this is stable.
    ordering = ("order", "key")


@extend_schema_view(
    list=extend_schema(summary="List the stages, in order"),
    retrieve=extend_schema(summary="One stage", responses={200: StageSerializer, 404: _ERRORS[404]}),
    create=extend_schema(
        summary="Create a stage",
        description="Template ids must name templates of the matching kind, owned by your business "
        "or the platform. Setting `is_initial` clears it on the other stages.",
        responses={201: StageSerializer, 400: _ERRORS[400]},
    ),
    update=extend_schema(summary="Replace a stage", responses={200: StageSerializer, **_ERRORS}),
    partial_update=extend_schema(summary="Change a stage", responses={200: StageSerializer, **_ERRORS}),
    destroy=extend_schema(
        summary="Delete a stage",
        description="Conversations in this stage keep going without one.",
        responses={204: None, 404: _ERRORS[404]},
    ),
)
class StageViewSet(viewsets.ModelViewSet):
    serializer_class = StageSerializer
    access_model = Stage._meta.label_lower
    lookup_value_converter = "uuid"
    pagination_class = StagePagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Stage.objects.none()
        return stage_list(business=self.request.auth.business)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["business"] = self.request.auth.business
        return context

    def perform_create(self, serializer: StageSerializer) -> None:
        serializer.instance = stage_create(business=self.request.auth.business, **serializer.validated_data)

    def perform_update(self, serializer: StageSerializer) -> None:
        serializer.instance = stage_update(stage=serializer.instance, data=serializer.validated_data)

    def perform_destroy(self, instance: Stage) -> None:
        stage_delete(stage=instance)
