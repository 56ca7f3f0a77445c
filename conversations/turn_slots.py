"""How many turns of one business a worker process runs at once.

A turn mostly waits on the LLM, so a worker runs many at once (its threads). One
business's broadcast must not take all of them: at most TURNS_MAX_PER_BUSINESS
turns of a business run in one process, and a turn over that share is handed
back to the queue for a moment (without holding a thread) instead of waiting.
The count is per process: with several worker processes each has its share.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

_lock = threading.Lock()
_running: dict[str, int] = {}


@contextmanager
def business_turn_slot(business_id: object) -> Iterator[bool]:
    """Yields whether the business had a free slot; the slot is given back on exit."""
    key = str(business_id)
    with _lock:
        taken = _running.get(key, 0) < settings.TURNS_MAX_PER_BUSINESS
        if taken:
            _running[key] = _running.get(key, 0) + 1
    try:
        yield taken
    finally:
        if taken:
            with _lock:
                _running[key] -= 1
                if not _running[key]:
                    del _running[key]
