"""REST API for channel accounts: thin doors onto channels_app.services and selectors."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from businesses.selectors import business_list
from channels_app.models import ChannelAccount, ChannelKind
from channels_app.selectors import channel_account_list
from channels_app.serializers import ChannelAccountSerializer
from channels_app.services import channel_account_create, channel_account_delete, channel_account_update
from icmp.api.docs import WRITE_ERRORS, errors
from icmp.api.permissions import IsMaster

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
        description="Owners, admins and API keys only. A WhatsApp, Messenger or Instagram account "
        "needs an `access_token` that controls its `external_id`: one Graph call checks it before "
        "anything is stored (400 `ownership_unproven`; 503 `ownership_check_unavailable` when Meta "
        "cannot be reached). `(kind, external_id)` is unique across the platform: an id already "
        "connected answers 400 `already_connected`, and only after the ownership check.",
        responses={201: ChannelAccountSerializer, **errors(*WRITE_ERRORS, 503)},
    ),
    partial_update=extend_schema(
        tags=[TAG],
        summary="Update a channel account",
        description="`kind` cannot be changed. Omitted secrets are kept; an empty string clears one. "
        "A new access_token clears needs_reauth. A new `external_id` or `access_token` of a Meta "
        "account is checked with Meta again, as on creation.",
        responses={200: ChannelAccountSerializer, **errors(503)},
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


class PlatformChannelAccountApi(APIView):
    """The platform operator connects an account for a business without Meta's ownership check."""

    permission_classes = [IsMaster]

    @extend_schema(
        tags=[TAG],
        summary="Connect a channel account for a business (master key, no ownership check)",
        description="For the platform operator, e.g. when the business's token cannot be checked "
        "with Meta. The account is recorded as approved by the operator.",
        request=ChannelAccountSerializer,
        responses={201: ChannelAccountSerializer, **errors(*WRITE_ERRORS, 404)},
    )
    def post(self, request: Request, business_id: UUID) -> Response:
        business = get_object_or_404(business_list(), pk=business_id)
        serializer = ChannelAccountSerializer(data=request.data, context={"business": business})
        serializer.is_valid(raise_exception=True)
        account = channel_account_create(
            business=business, operator_approved=True, **serializer.validated_data
        )
        return Response(ChannelAccountSerializer(account).data, status=status.HTTP_201_CREATED)
