"""Back office for contacts, conversations (with their transcript), messages and LLM calls.

Messages, LLM calls and webhook events are the system's record: read-only here.
"""

from __future__ import annotations

# Importing the modules registers their ModelAdmins (Django autodiscovers this package).
from . import inbox, ledger, messages

__all__ = ["inbox", "ledger", "messages"]
