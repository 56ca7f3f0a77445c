"""Flag a conversation for staff: the one write every part of the message path may need.

Turns (a handoff, a message given up), sends (a permanent failure), receipts
(Meta reports a failed delivery) and the sweeper (an interrupted send) all end
here, so it sits below them and imports nothing but the models.
"""

from __future__ import annotations

from conversations.models import AIMode, Conversation

REASON_MAX = 500


def conversation_flag_for_staff(*, conversation_id, reason: str, pause_ai: bool = False) -> None:
    """Set needs-human with a reason (keeping an earlier reason), optionally pausing the AI."""
    fields: dict = {"needs_human": True}
    if pause_ai:
        fields["ai_mode"] = AIMode.PAUSED
    Conversation.objects.filter(pk=conversation_id).update(**fields)
    Conversation.objects.filter(pk=conversation_id, handoff_reason="").update(
        handoff_reason=reason[:REASON_MAX]
    )
