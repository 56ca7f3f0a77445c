"""Each channel's messaging window, decided by its adapter (channels_app/adapters/windows.py).

Pure: a ReplyDraft in, the content that may be sent (or a permanent SendError) out.
The end-to-end sends are in tests/conversations/test_outbound.py and tests/api/test_staff_reply.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from channels_app.adapters import get_adapter
from channels_app.adapters.base import QuickReply, ReplyDraft, SendError, TemplateMessage

HOUR = timedelta(hours=1)
TEMPLATE = TemplateMessage(name="we_are_back", language="en")


def _draft(since: timedelta | None, *, from_staff: bool = False, template: TemplateMessage | None = None):
    return ReplyDraft(
        text="Hello",
        quick_replies=[QuickReply(id="qr1", title="Yes")],
        callback_data="msg-1",
        from_staff=from_staff,
        since_customer=since,
        window_template=template,
    )


@pytest.mark.parametrize("kind", ["whatsapp", "messenger", "instagram", "api"])
def test_inside_24_hours_every_channel_sends_the_text_as_written(kind):
    content = get_adapter(kind).compose(_draft(23 * HOUR))
    assert (content.text, content.template, content.messaging_tag) == ("Hello", None, None)
    assert content.replies() == [QuickReply(id="qr1", title="Yes")]
    assert content.callback_data == "msg-1"


@pytest.mark.parametrize("since", [25 * HOUR, None])
def test_whatsapp_outside_the_window_needs_the_approved_template(since):
    with pytest.raises(SendError) as refused:
        get_adapter("whatsapp").compose(_draft(since))
    assert (refused.value.code, refused.value.permanent) == ("131047", True)

    content = get_adapter("whatsapp").compose(_draft(since, template=TEMPLATE))
    assert (content.template, content.text, content.callback_data) == (TEMPLATE, "", "msg-1")


@pytest.mark.parametrize("kind", ["messenger", "instagram"])
def test_messenger_staff_answer_within_7_days_with_the_human_agent_tag(kind):
    content = get_adapter(kind).compose(_draft(6 * 24 * HOUR, from_staff=True))
    assert (content.text, content.messaging_tag) == ("Hello", "HUMAN_AGENT")


@pytest.mark.parametrize(
    ("since", "from_staff"),
    [(25 * HOUR, False), (8 * 24 * HOUR, True), (None, True)],
    ids=["the AI after 24 h", "staff after 7 days", "nobody ever wrote"],
)
@pytest.mark.parametrize("kind", ["messenger", "instagram"])
def test_messenger_outside_its_windows_refuses_permanently(kind, since, from_staff):
    with pytest.raises(SendError) as refused:
        get_adapter(kind).compose(_draft(since, from_staff=from_staff))
    assert (refused.value.code, refused.value.subcode, refused.value.permanent) == ("10", 2018278, True)


def test_the_api_channel_has_no_window():
    content = get_adapter("api").compose(_draft(None))
    assert content.text == "Hello"
