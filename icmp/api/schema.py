"""OpenAPI descriptions of our authentication classes (drf-spectacular extensions).

Imported by icmp.urls so the extensions are registered before the schema is built.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as _SpectacularAutoSchema


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "icmp.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>` or `Bearer <key>`: a business key, or a platform key.",
        }


class StaffSessionAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "icmp.api.authentication.StaffSessionAuthentication"
    name = "StaffSession"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "A staff member's admin session (send the CSRF token on writes; "
            "choose the business with `X-Business-Id` when the login has several).",
        }


# Errors any operation can answer, with the one JSON error shape. Documented on
# every operation so the schema is truthful for clients and schemathesis.
_COMMON_ERRORS = {
    "400": "Invalid input: malformed JSON, a bad filter or cursor, field errors in `details`.",
    "401": "Missing, invalid, expired or revoked credentials.",
    "403": "This caller or role may not do this.",
    "404": "No such object for the caller (another tenant's id answers 404 too).",
    "429": "Rate limited; see the Retry-After header.",
}
_BODY_ERRORS = {
    "413": "Request body larger than the configured limit.",
    "415": "The body is not `application/json`.",
}


class AutoSchema(_SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        from icmp.api.serializers import ErrorSerializer

        responses = super()._get_response_bodies(direction)
        errors = dict(_COMMON_ERRORS)
        if self.method in ("POST", "PUT", "PATCH"):
            errors.update(_BODY_ERRORS)
        for code, description in errors.items():
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = description
                responses[code] = response
        return responses
