"""REST API for channel accounts: thin doors onto channels_app.services and selectors."""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets

from channels_app.models import ChannelAccount, ChannelKind
from channels_app.selectors import channel_account_list
from channels_app.serializers import ChannelAccountSerializer
from channels_app.services import channel_account_create, channel_account_delete, channel_account_update

TAG = "channel-accounts"


class ChannelAccountFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=ChannelKind.choices)

    class Meta:
        model = ChannelAccount
        fields = ["kind"]


@extend_schema_view(
    list=extend_schema(tags=[TAG], summary="List the business's channel accounts"),
    retrieve=extend_schema(tags=[TAG], summary="Get a channel account"),
    create=extend_schema(
        tags=[TAG],
        summary="Connect a channel account",
        description="Owners, admins and API keys only. `(kind, external_id)` is unique across the "
        "platform: an id already connected answers 400 `already_connected`.",
        responses={201: ChannelAccountSerializer, 400: OpenApiResponse(description="Invalid input")},
    ),
    partial_update=extend_schema(
        tags=[TAG],
        summary="Update a channel account",
        description="`kind` cannot be changed. Omitted secrets are kept; an empty string clears one. "
        "A new access_token clears needs_reauth.",
    ),
    destroy=extend_schema(
        tags=[TAG],
        summary="Delete a channel account without conversations",
        description="An account with contacts answers 400 `in_use`: deactivate it instead.",
        responses={204: None, 400: OpenApiResponse(description="The account is in use")},
    ),
)
class ChannelAccountViewSet(viewsets.ModelViewSet):
    serializer_class = ChannelAccountSerializer
    access_model = ChannelAccount._meta.label_lower
    filterset_class = ChannelAccountFilter
    lookup_value_converter = "uuid"
    # PATCH only: a PUT would have to resend every secret.
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = ChannelAccount.objects.none()  # for schema introspection; see get_queryset

    def get_queryset(self) -> QuerySet[ChannelAccount]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return ChannelAccount.objects.none()
        return channel_account_list(business=self.request.auth.business)

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        principal = getattr(self.request, "auth", None)
        context["business"] = getattr(principal, "business", None)
        return context

    def perform_create(self, serializer: ChannelAccountSerializer) -> None:
        serializer.instance = channel_account_create(
            business=self.request.auth.business, **serializer.validated_data
        )

    def perform_update(self, serializer: ChannelAccountSerializer) -> None:
        serializer.instance = channel_account_update(
            channel_account=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance: ChannelAccount) -> None:
        channel_account_delete(channel_account=instance)
