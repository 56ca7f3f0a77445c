"""Channel adapter tests; provider payloads live in tests/fixtures/<channel>/<event>.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_bytes(channel: str, name: str) -> bytes:
    """A fixture's exact bytes, as Meta would sign them."""
    return (FIXTURES / channel / f"{name}.json").read_bytes()


def fixture(channel: str, name: str) -> dict[str, Any]:
    return json.loads(fixture_bytes(channel, name))


def fixture_names(channel: str) -> list[str]:
    return sorted(path.stem for path in (FIXTURES / channel).glob("*.json"))
