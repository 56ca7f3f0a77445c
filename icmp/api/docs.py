"""Documented error responses for drf-spectacular annotations."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse

from icmp.api.serializers import ErrorSerializer

_ERROR_TEXT = {
    400: "Invalid input: `parse_error` (malformed JSON), `validation_error` (field errors in "
    "`details`), or a domain code such as `invalid_config` or `duplicate`.",
    401: "Missing, malformed, invalid, expired or revoked credentials (see WWW-Authenticate).",
    403: "Authenticated, but this principal or role may not do this (or a CSRF failure).",
    404: "No such object for the caller (another tenant's id answers 404 too).",
    413: "Request body larger than API_MAX_BODY_BYTES.",
    415: "The body is not `application/json`.",
    429: "Rate limited; the Retry-After header says when to retry.",
    503: "A service this request needs did not answer (e.g. Meta, for the ownership check); retry later.",
}
READ_ERRORS = (401, 403, 429)
WRITE_ERRORS = (400, 401, 403, 413, 415, 429)


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorSerializer, description=_ERROR_TEXT[code]) for code in codes}
