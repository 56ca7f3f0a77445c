"""Each channel's messaging window: what may be sent how long after the customer last wrote.

- WhatsApp: free-form messages only within 24 hours of the customer's last
  message; after that only an approved template (error 131047 otherwise).
- Messenger and Instagram: 24 hours too; a person may answer up to 7 days
  later with the HUMAN_AGENT tag (error 10, subcode 2018278 otherwise).
- The API channel has no window.

See docs/meta-platform.md for the sources.
"""

from __future__ import annotations

from datetime import timedelta

from .base import OutboundContent, ReplyDraft, SendError

SERVICE_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
HUMAN_AGENT_TAG = "HUMAN_AGENT"
# Graph's code for a free-form WhatsApp message outside the customer service window.
WHATSAPP_OUTSIDE_WINDOW = "131047"
MESSENGER_OUTSIDE_WINDOW = "10"
MESSENGER_OUTSIDE_WINDOW_SUBCODE = 2018278


def _free_form(draft: ReplyDraft, *, tag: str | None = None) -> OutboundContent:
    return OutboundContent(
        text=draft.text,
        quick_replies=draft.quick_replies,
        messaging_tag=tag,
        callback_data=draft.callback_data,
    )


def _inside(since: timedelta | None, window: timedelta) -> bool:
    return since is not None and since <= window


def whatsapp_compose(draft: ReplyDraft) -> OutboundContent:
    if _inside(draft.since_customer, SERVICE_WINDOW):
        return _free_form(draft)
    if draft.window_template is None:
        raise SendError(
            WHATSAPP_OUTSIDE_WINDOW,
            "Outside WhatsApp's 24-hour customer service window and no approved template "
            "is configured for it (AI settings: whatsapp_window_template).",
            permanent=True,
        )
    return OutboundContent(template=draft.window_template, callback_data=draft.callback_data)


def messenger_compose(draft: ReplyDraft) -> OutboundContent:
    if _inside(draft.since_customer, SERVICE_WINDOW):
        return _free_form(draft)
    if draft.from_staff and _inside(draft.since_customer, HUMAN_AGENT_WINDOW):
        return _free_form(draft, tag=HUMAN_AGENT_TAG)
    raise SendError(
        MESSENGER_OUTSIDE_WINDOW,
        "Outside the 24-hour messaging window (staff may answer within 7 days).",
        permanent=True,
        subcode=MESSENGER_OUTSIDE_WINDOW_SUBCODE,
    )


def unlimited_compose(draft: ReplyDraft) -> OutboundContent:
    return _free_form(draft)
