"""Cursor pagination: stable under inserts, no COUNT(*) and no OFFSET scans."""

from __future__ import annotations

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    # Ids are UUIDv7 (time-ordered), so (-created_at, -id) is unique and indexed.
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        # A malformed cursor is bad input (400), not a missing resource (DRF says 404).
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({"cursor": ["Invalid cursor."]})


class ActivityCursorPagination(CreatedCursorPagination):
    ordering = ("-last_message_at", "-id")


class TranscriptCursorPagination(CreatedCursorPagination):
    """Messages oldest first, as a transcript reads."""

    ordering = ("created_at", "id")
    page_size = 100
