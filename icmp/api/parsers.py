"""The API's JSON parser: DRF's, with icmp.strict_json's limits.

DRF's JSONParser turns only ValueError into a 400, so a body nested thousands
deep (RecursionError) was a 500 on every JSON route, and a lone surrogate went
on to the database, which cannot store it.

A JSON body is UTF-8 (RFC 8259 §8.1), whatever charset the client names:
decoding with the client's charset let `charset=utf-7` smuggle a lone surrogate
past the check for `\\u` escapes ("A+2AA-" is one in UTF-7).
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from icmp import strict_json


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        # BodySizeLimitMiddleware has already bounded the body.
        body = stream.read()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"JSON parse error - the body must be UTF-8 (byte {exc.start} is not valid UTF-8)."
            )
        try:
            return strict_json.loads(text)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}")
