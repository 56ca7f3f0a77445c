"""The API's JSON parser: DRF's, with icmp.strict_json's limits.

DRF's JSONParser turns only ValueError into a 400, so a body nested thousands
deep (RecursionError) was a 500 on every JSON route, and a lone surrogate went
on to the database, which cannot store it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from icmp import strict_json


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            # BodySizeLimitMiddleware has already bounded the body.
            return strict_json.loads(stream.read().decode(encoding))
        except (ValueError, LookupError) as exc:
            raise ParseError(f"JSON parse error - {exc}")
