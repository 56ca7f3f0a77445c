"""REST API: the caller's business, its agents, API keys and AI settings; platform routes.

Thin doors: serializers validate shapes, services write, selectors read. Every
business-level queryset starts from `request.auth.business`, so another tenant's
id answers 404.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from businesses import selectors, services
from businesses.filters import BusinessFilter
from businesses.models import Agent, AIControlSettings, APIKey, Business
from businesses.serializers import (
    AgentSerializer,
    AIControlSettingsSerializer,
    APIKeyCreatedSerializer,
    APIKeyCreateSerializer,
    APIKeySerializer,
    AuthCheckSerializer,
    BusinessSerializer,
    PlatformBusinessCreatedSerializer,
    PlatformBusinessCreateSerializer,
    PlatformBusinessSerializer,
    VerifyOwnerResultSerializer,
    VerifyOwnerSerializer,
    validated,
)
from icmp.api.docs import READ_ERRORS, WRITE_ERRORS, errors
from icmp.api.permissions import IsAnyPrincipal, IsMaster, IsPlatform, principal_of
from icmp.api.principal import PrincipalKind


def caller_business(request: Request) -> Business:
    # The permission classes guarantee a business principal with a business.
    return request.auth.business


@extend_schema(tags=["auth"])
class AuthCheckApi(APIView):
    """Who is calling: the principal kind and, for business principals, the business."""

    permission_classes = [IsAnyPrincipal]

    @extend_schema(
        operation_id="auth_check",
        responses={200: AuthCheckSerializer, **errors(*READ_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        business = principal.business if principal.kind == PrincipalKind.BUSINESS else None
        return Response(
            {
                "kind": principal.kind.value,
                "business": str(business.pk) if business else None,
                "role": principal.role,
            }
        )


@extend_schema(tags=["business"])
class BusinessApi(APIView):
    """The caller's business. Owners, admins and business keys may change its name and config."""

    access_model = Business._meta.label_lower

    @extend_schema(
        operation_id="business_retrieve", responses={200: BusinessSerializer, **errors(*READ_ERRORS)}
    )
    def get(self, request: Request) -> Response:
        return Response(BusinessSerializer(caller_business(request)).data)

    @extend_schema(
        operation_id="business_partial_update",
        request=BusinessSerializer,
        responses={200: BusinessSerializer, **errors(*WRITE_ERRORS)},
        description="`config` is replaced as a whole and validated against the business config "
        "JSON Schema; schema errors come as `details.config = [{path, message}]`.",
    )
    def patch(self, request: Request) -> Response:
        business = caller_business(request)
        data = validated(BusinessSerializer, request.data, instance=business, partial=True)
        business = services.business_update(business=business, data=data)
        return Response(BusinessSerializer(business).data)


@extend_schema(tags=["business"])
class AISettingsApi(APIView):
    """The caller's AI control settings (created with defaults on first use)."""

    access_model = AIControlSettings._meta.label_lower

    @extend_schema(
        operation_id="business_ai_settings_retrieve",
        responses={200: AIControlSettingsSerializer, **errors(*READ_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        ai_settings = services.ai_settings_ensure(business=caller_business(request))
        return Response(AIControlSettingsSerializer(ai_settings).data)

    @extend_schema(
        operation_id="business_ai_settings_partial_update",
        request=AIControlSettingsSerializer,
        responses={200: AIControlSettingsSerializer, **errors(*WRITE_ERRORS)},
    )
    def patch(self, request: Request) -> Response:
        business = caller_business(request)
        # Validate first, so an invalid body does not even create the row.
        data = validated(AIControlSettingsSerializer, request.data, partial=True)
        ai_settings = services.ai_settings_ensure(business=business)
        ai_settings = services.ai_settings_update(ai_settings=ai_settings, data=data)
        return Response(AIControlSettingsSerializer(ai_settings).data)


@extend_schema(tags=["agents"])
@extend_schema_view(
    list=extend_schema(responses={200: AgentSerializer(many=True), **errors(*READ_ERRORS)}),
    retrieve=extend_schema(responses={200: AgentSerializer, **errors(*READ_ERRORS, 404)}),
    create=extend_schema(responses={201: AgentSerializer, **errors(*WRITE_ERRORS)}),
    partial_update=extend_schema(responses={200: AgentSerializer, **errors(*WRITE_ERRORS, 404)}),
    destroy=extend_schema(
        description="Deletes an agent. The default agent cannot be deleted (400 "
        "`default_agent_protected`): make another agent the default first.",
        responses={204: None, **errors(400, 401, 403, 404, 429)},
    ),
)
class AgentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Agents of the caller's business. Viewers may only read. Changes are PATCH only (no PUT)."""

    serializer_class = AgentSerializer
    access_model = Agent._meta.label_lower
    lookup_value_converter = "uuid"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return Agent.objects.none()
        return selectors.agent_list(business=caller_business(self.request))

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(AgentSerializer, request.data)
        agent = services.agent_create(business=caller_business(request), **data)
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        agent = self.get_object()
        data = validated(AgentSerializer, request.data, instance=agent, partial=True)
        agent = services.agent_update(agent=agent, data=data)
        return Response(AgentSerializer(agent).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.agent_delete(agent=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["api-keys"])
@extend_schema_view(
    list=extend_schema(responses={200: APIKeySerializer(many=True), **errors(*READ_ERRORS)}),
    retrieve=extend_schema(responses={200: APIKeySerializer, **errors(*READ_ERRORS, 404)}),
    create=extend_schema(
        request=APIKeyCreateSerializer,
        responses={201: APIKeyCreatedSerializer, **errors(*WRITE_ERRORS)},
        description="Creates a key. The full `key` is in this response only; store it now.",
    ),
    destroy=extend_schema(
        description="Revokes the key (same as `revoke/`); the row stays for audit.",
        responses={204: None, **errors(401, 403, 404, 429)},
    ),
)
class APIKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """API keys of the caller's business. Only owners, admins and business keys may change them."""

    serializer_class = APIKeySerializer
    access_model = APIKey._meta.label_lower
    access_actions = {"revoke": "change"}
    lookup_value_converter = "uuid"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return APIKey.objects.none()
        return selectors.api_key_list(business=caller_business(self.request))

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(APIKeyCreateSerializer, request.data)
        user = request.user if getattr(request.user, "is_authenticated", False) else None
        api_key, raw_key = services.api_key_create(
            business=caller_business(request),
            name=data["name"],
            expires_at=data.get("expires_at"),
            created_by=user,
        )
        body = APIKeyCreatedSerializer(api_key, context={"raw_key": raw_key}).data
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.api_key_revoke(api_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: APIKeySerializer, **errors(401, 403, 404, 429)})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke the key: any request made with it then answers 401. Idempotent."""
        api_key = services.api_key_revoke(api_key=self.get_object())
        return Response(APIKeySerializer(api_key).data)


class CanVerifyOwner(BasePermission):
    """Owner verification only reads, so the internal key may use it as well as the master key."""

    message = "This route needs a platform API key."

    def has_permission(self, request: Request, view) -> bool:
        principal = principal_of(request)
        return principal is not None and principal.kind in (PrincipalKind.MASTER, PrincipalKind.INTERNAL)


@extend_schema(tags=["platform"])
@extend_schema_view(
    list=extend_schema(
        description="Every business (master or internal key). `?owner_email=` looks a business up "
        "by its owner's email.",
        responses={200: PlatformBusinessSerializer(many=True), **errors(400, *READ_ERRORS)},
    ),
    retrieve=extend_schema(responses={200: PlatformBusinessSerializer, **errors(*READ_ERRORS, 404)}),
    create=extend_schema(
        description="Master key only. Creates the business, its owner login (when new), AI "
        "settings, a default agent and stage, and the first API key, returned once as `api_key`.",
        request=PlatformBusinessCreateSerializer,
        responses={201: PlatformBusinessCreatedSerializer, **errors(*WRITE_ERRORS)},
    ),
)
class PlatformBusinessViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Platform routes over every business: master key for writes, internal key may read."""

    serializer_class = PlatformBusinessSerializer
    filterset_class = BusinessFilter
    lookup_value_converter = "uuid"

    def get_queryset(self):
        return selectors.business_list()

    def get_permissions(self) -> list[BasePermission]:
        if self.action == "create":
            return [IsMaster()]
        if self.action == "verify_owner":
            return [CanVerifyOwner()]
        return [IsPlatform()]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(PlatformBusinessCreateSerializer, request.data)
        business, raw_key = services.business_create(
            name=data["name"],
            owner_email=data["owner_email"],
            config=data.get("config"),
            slug=data.get("slug"),
        )
        body = PlatformBusinessCreatedSerializer(business, context={"raw_key": raw_key}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=VerifyOwnerSerializer,
        responses={200: VerifyOwnerResultSerializer, **errors(400, 401, 403, 404, 413, 415, 429)},
    )
    @action(detail=True, methods=["post"], url_path="verify-owner")
    def verify_owner(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Whether an email is the owner of this business (master or internal key)."""
        business = self.get_object()
        data = validated(VerifyOwnerSerializer, request.data)
        return Response({"verified": selectors.business_owner_verify(business=business, email=data["email"])})
