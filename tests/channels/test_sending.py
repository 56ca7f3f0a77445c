from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels_app.adapters import (
    ChannelCredentials,
    OutboundContent,
    QuickReply,
    SendError,
    TemplateMessage,
    get_adapter,
)
from channels_app.adapters.text import measure, split_tail, split_text
from channels_app.adapters.whatsapp import ListRow, ListSection
from tests.fakes.graph_api import FakeGraphAPI

PNID = "106540352242922"
PAGE = "102938475610293"
IGID = "17841400000000000"
WA = ChannelCredentials(external_id=PNID, access_token="wa-token")
FB = ChannelCredentials(external_id=PAGE, access_token="page-token")
IG = ChannelCredentials(external_id=IGID, access_token="ig-token")


def words(n: int, word: str = "palavra") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


# WhatsApp


def test_whatsapp_text_posts_meta_body_to_the_phone_number_with_a_bearer_token(
    fake_graph: FakeGraphAPI,
) -> None:
    results = get_adapter("whatsapp").send(WA, "5511987654321", OutboundContent(text="Seu pedido sai hoje."))
    request = fake_graph.last
    assert (request.method, request.path) == ("POST", f"/v25.0/{PNID}/messages")
    assert request.headers["Authorization"] == "Bearer wa-token"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511987654321",
        "type": "text",
        "text": {"body": "Seu pedido sai hoje.", "preview_url": False},
    }
    assert [r.external_id for r in results] == ["wamid.1"]
    assert results[0].raw["messages"] == [{"id": "wamid.1"}]


def test_whatsapp_text_over_4096_characters_is_split_and_only_the_first_part_quotes(
    fake_graph: FakeGraphAPI,
) -> None:
    text = words(1500)  # 16,889 characters: five parts
    results = get_adapter("whatsapp").send(
        WA, "5511987654321", OutboundContent(text=text, reply_to="wamid.IN1")
    )
    bodies = fake_graph.bodies()
    assert len(bodies) == len(results) == 5
    assert all(len(b["text"]["body"]) <= 4096 for b in bodies)
    assert " ".join(b["text"]["body"] for b in bodies) == text  # cut between words, nothing lost
    assert bodies[0]["context"] == {"message_id": "wamid.IN1"}
    assert all("context" not in b for b in bodies[1:])
    assert [r.external_id for r in results] == [f"wamid.{n}" for n in range(1, 6)]


def test_up_to_three_quick_replies_become_reply_buttons(fake_graph: FakeGraphAPI) -> None:
    content = OutboundContent(
        text="O que deseja fazer?",
        quick_replies=[
            ("track", "Rastrear pedido"),
            ("cancel", "Cancelar"),
            ("agent", "Falar com um atendente humano"),
        ],
        reply_to="wamid.IN2",
    )
    [result] = get_adapter("whatsapp").send(WA, "5511987654321", content)
    assert result.external_id == "wamid.1"
    assert fake_graph.last.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511987654321",
        "context": {"message_id": "wamid.IN2"},
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "O que deseja fazer?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "track", "title": "Rastrear pedido"}},
                    {"type": "reply", "reply": {"id": "cancel", "title": "Cancelar"}},
                    {"type": "reply", "reply": {"id": "agent", "title": "Falar com um…"}},
                ]
            },
        },
    }


def test_button_titles_are_shortened_to_20_characters_and_made_unique(fake_graph: FakeGraphAPI) -> None:
    get_adapter("whatsapp").send_buttons(
        WA,
        "5511987654321",
        "Escolha",
        [QuickReply("a" * 300, "Entrega expressa hoje"), QuickReply("b", "Entrega expressa amanhã")],
        header="Pedido #4711",
        footer="Acme",
    )
    interactive = fake_graph.last.body["interactive"]
    buttons = [b["reply"] for b in interactive["action"]["buttons"]]
    titles = [b["title"] for b in buttons]
    assert all(len(t) <= 20 for t in titles) and len(set(titles)) == 2
    assert titles[0] == "Entrega expressa…"
    assert len(buttons[0]["id"]) == 256
    assert interactive["header"] == {"type": "text", "text": "Pedido #4711"}
    assert interactive["footer"] == {"text": "Acme"}


def test_four_to_ten_quick_replies_become_a_list(fake_graph: FakeGraphAPI) -> None:
    replies = [(f"opt{i}", f"Opção número {i} com título longo") for i in range(1, 6)]
    get_adapter("whatsapp").send(
        WA, "5511987654321", OutboundContent(text="Qual opção?", quick_replies=replies)
    )
    interactive = fake_graph.last.body["interactive"]
    assert interactive["type"] == "list"
    assert interactive["body"] == {"text": "Qual opção?"}
    assert interactive["action"]["button"] == "Menu"
    [section] = interactive["action"]["sections"]
    assert "title" not in section  # one section needs no title
    assert [row["id"] for row in section["rows"]] == ["opt1", "opt2", "opt3", "opt4", "opt5"]
    assert all(len(row["title"]) <= 24 for row in section["rows"])
    assert len({row["title"] for row in section["rows"]}) == 5


def test_a_list_message_respects_meta_limits_on_sections_rows_and_texts(fake_graph: FakeGraphAPI) -> None:
    sections = [
        ListSection("Rápidas e baratas demais agora", [ListRow("x" * 250, "Expressa", "d" * 100)]),
        ListSection("Normais", [ListRow("std", "Padrão")]),
    ]
    get_adapter("whatsapp").send_list(WA, "5511987654321", "Como enviar?", "Ver opções de entrega", sections)
    action = fake_graph.last.body["interactive"]["action"]
    assert len(action["button"]) <= 20
    first, second = action["sections"]
    assert len(first["title"]) <= 24 and second["title"] == "Normais"
    row = first["rows"][0]
    assert len(row["id"]) == 200 and len(row["description"]) <= 72


def test_a_list_with_more_than_ten_rows_is_refused_before_calling_meta(fake_graph: FakeGraphAPI) -> None:
    rows = [ListRow(str(i), f"Row {i}") for i in range(11)]
    with pytest.raises(SendError) as caught:
        get_adapter("whatsapp").send_list(WA, "5511987654321", "Body", "Menu", [ListSection("", rows)])
    assert caught.value.code == "invalid_content" and caught.value.permanent
    assert fake_graph.requests == []


def test_more_than_ten_quick_replies_fall_back_to_text_listing_them(fake_graph: FakeGraphAPI) -> None:
    replies = [(str(i), f"Opção {i}") for i in range(12)]
    get_adapter("whatsapp").send(WA, "5511987654321", OutboundContent(text="Escolha:", quick_replies=replies))
    body = fake_graph.last.body
    assert body["type"] == "text"
    assert body["text"]["body"].startswith("Escolha:\n\n• Opção 0\n• Opção 1")


def test_a_long_text_with_buttons_sends_text_first_and_the_buttons_on_a_short_last_part(
    fake_graph: FakeGraphAPI,
) -> None:
    text = words(400)  # about 4,000 characters: too long for a button body (1024)
    results = get_adapter("whatsapp").send(
        WA, "5511987654321", OutboundContent(text=text, quick_replies=[("y", "Sim"), ("n", "Não")])
    )
    first, last = fake_graph.bodies()
    assert first["type"] == "text" and last["type"] == "interactive"
    assert len(last["interactive"]["body"]["text"]) <= 1024
    assert f"{first['text']['body']} {last['interactive']['body']['text']}" == text
    assert len(results) == 2


def test_whatsapp_template_posts_name_language_and_components(fake_graph: FakeGraphAPI) -> None:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "4711"}]}]
    template = TemplateMessage(name="order_update", language="pt_BR", components=components)
    [result] = get_adapter("whatsapp").send(
        WA, "5511987654321", OutboundContent(text="ignored", template=template)
    )
    assert fake_graph.last.body == {
        "messaging_product": "whatsapp",
        "to": "5511987654321",
        "type": "template",
        "template": {"name": "order_update", "language": {"code": "pt_BR"}, "components": components},
    }
    assert result.external_id == "wamid.1"


def test_mark_read_sends_the_read_status_with_a_typing_indicator(fake_graph: FakeGraphAPI) -> None:
    adapter = get_adapter("whatsapp")
    assert adapter.mark_read(WA, "wamid.IN1") == {"success": True}
    assert adapter.mark_read(WA, "wamid.IN2", typing=False) == {"success": True}
    with_typing, without = fake_graph.requests
    assert with_typing.path == f"/v25.0/{PNID}/messages"
    assert with_typing.body == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN1",
        "typing_indicator": {"type": "text"},
    }
    assert without.body == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN2"}


def test_nothing_to_send_is_a_permanent_error_without_a_request(fake_graph: FakeGraphAPI) -> None:
    for kind, account in (("whatsapp", WA), ("messenger", FB), ("instagram", IG), ("api", WA)):
        with pytest.raises(SendError) as caught:
            get_adapter(kind).send(account, "someone", OutboundContent(text="  "))
        assert caught.value.code == "empty_message" and caught.value.permanent
    assert fake_graph.requests == []


# Messenger


def test_messenger_text_is_a_response_to_the_page_messages_endpoint(fake_graph: FakeGraphAPI) -> None:
    [result] = get_adapter("messenger").send(FB, "7392015648120394", OutboundContent(text="Chega amanhã!"))
    request = fake_graph.last
    assert request.path == f"/v25.0/{PAGE}/messages"
    assert request.headers["Authorization"] == "Bearer page-token"
    assert request.body == {
        "recipient": {"id": "7392015648120394"},
        "messaging_type": "RESPONSE",
        "message": {"text": "Chega amanhã!"},
    }
    assert result.external_id == "m_1"
    assert result.raw == {"recipient_id": "7392015648120394", "message_id": "m_1"}


def test_messenger_text_of_2000_characters_or_more_is_split_below_2000(fake_graph: FakeGraphAPI) -> None:
    text = words(700)  # about 6,000 characters
    results = get_adapter("messenger").send(FB, "7392015648120394", OutboundContent(text=text))
    chunks = [b["message"]["text"] for b in fake_graph.bodies()]
    assert len(chunks) == len(results) == 4
    assert all(len(chunk) < 2000 for chunk in chunks)
    assert " ".join(chunks) == text


def test_messenger_quick_replies_ride_on_the_last_part_with_short_titles(fake_graph: FakeGraphAPI) -> None:
    replies = [QuickReply(f"P{i}", f"Opção de entrega número {i}") for i in range(13)]
    get_adapter("messenger").send(
        FB, "7392015648120394", OutboundContent(text=words(300), quick_replies=replies)
    )
    first, last = fake_graph.bodies()
    assert "quick_replies" not in first["message"]
    quick = last["message"]["quick_replies"]
    assert len(quick) == 13
    assert quick[0] == {"content_type": "text", "title": "Opção de entrega…", "payload": "P0"}
    assert all(len(q["title"]) <= 20 for q in quick)


def test_messenger_staff_replies_outside_the_window_use_the_human_agent_tag(fake_graph: FakeGraphAPI) -> None:
    content = OutboundContent(text="Oi, é a Maria", messaging_tag="HUMAN_AGENT")
    get_adapter("messenger").send(FB, "7392015648120394", content)
    body = fake_graph.last.body
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


@pytest.mark.parametrize("action", ["typing_on", "mark_seen"])
def test_sender_actions_are_requests_of_their_own(fake_graph: FakeGraphAPI, action: str) -> None:
    answer = get_adapter("messenger").sender_action(FB, "7392015648120394", action)
    assert fake_graph.last.body == {"recipient": {"id": "7392015648120394"}, "sender_action": action}
    assert answer == {"recipient_id": "7392015648120394"}


def test_an_unknown_sender_action_is_refused_before_calling_meta(fake_graph: FakeGraphAPI) -> None:
    with pytest.raises(SendError):
        get_adapter("messenger").sender_action(FB, "7392015648120394", "dance")
    assert fake_graph.requests == []


def test_a_template_only_message_cannot_go_to_messenger(fake_graph: FakeGraphAPI) -> None:
    template = TemplateMessage(name="order_update", language="pt_BR")
    with pytest.raises(SendError) as caught:
        get_adapter("messenger").send(FB, "7392015648120394", OutboundContent(template=template))
    assert caught.value.permanent and fake_graph.requests == []


# Instagram


def test_instagram_posts_to_me_messages_and_splits_at_1000_utf8_bytes(fake_graph: FakeGraphAPI) -> None:
    text = " ".join(["ação 😀 coração 👍🏽 maçã"] * 150)  # multibyte throughout, ~5,000 bytes
    results = get_adapter("instagram").send(IG, "6841100000000000", OutboundContent(text=text))
    assert {r.path for r in fake_graph.requests} == {"/v25.0/me/messages"}
    assert fake_graph.last.headers["Authorization"] == "Bearer ig-token"
    chunks = [b["message"]["text"] for b in fake_graph.bodies()]
    assert len(results) == len(chunks) > 4
    assert all(len(chunk.encode("utf-8")) <= 1000 for chunk in chunks)
    assert all(
        not chunk.startswith(("\U0001f3fd", " ")) for chunk in chunks
    )  # no split emoji, no stray spaces
    assert " ".join(chunks) == text


def test_instagram_quick_replies_use_the_messenger_format(fake_graph: FakeGraphAPI) -> None:
    get_adapter("instagram").send(
        IG, "6841100000000000", OutboundContent(text="Tamanho?", quick_replies=[("m", "M")])
    )
    assert fake_graph.last.body == {
        "recipient": {"id": "6841100000000000"},
        "messaging_type": "RESPONSE",
        "message": {
            "text": "Tamanho?",
            "quick_replies": [{"content_type": "text", "title": "M", "payload": "m"}],
        },
    }


# Errors


def send_one(kind: str = "whatsapp") -> None:
    account = {"whatsapp": WA, "messenger": FB, "instagram": IG}[kind]
    get_adapter(kind).send(account, "5511987654321", OutboundContent(text="Oi"))


def test_a_500_without_a_graph_body_is_transient(fake_graph: FakeGraphAPI) -> None:
    fake_graph.fail(500, "<html>Internal Server Error</html>")
    with pytest.raises(SendError) as caught:
        send_one()
    error = caught.value
    assert (error.permanent, error.code, error.http_status, error.needs_reauth) == (
        False,
        "http_500",
        500,
        False,
    )


@pytest.mark.parametrize(
    ("code", "status", "subcode", "permanent", "needs_reauth", "retry_after"),
    [
        (130429, 400, None, False, False, 2.0),  # throughput limit
        (131056, 400, None, False, False, 6.0),  # pair rate limit: one message per 6 s
        (131000, 500, None, False, False, 5.0),
        (131057, 400, None, False, False, 60.0),
        (80007, 400, None, False, False, 60.0),
        (4, 403, None, False, False, 60.0),
        (613, 400, None, False, False, 60.0),
        (2, 503, None, False, False, 5.0),
        (131047, 400, None, True, False, None),  # 24-hour window closed
        (131026, 400, None, True, False, None),
        (132001, 404, None, True, False, None),  # template does not exist
        (190, 401, 463, True, True, None),  # token expired
        (10, 403, 2018278, True, False, None),  # outside the allowed window
        (551, 400, None, True, False, None),
        (100, 400, None, True, False, None),
        (368, 400, None, True, False, None),
        (200, 403, None, True, False, None),
        (99999, 400, None, True, False, None),  # unknown 4xx: permanent
        (99999, 502, None, False, False, None),  # unknown 5xx: transient
    ],
)
def test_graph_errors_are_classified_as_permanent_or_transient(
    fake_graph: FakeGraphAPI,
    code: int,
    status: int,
    subcode: int | None,
    permanent: bool,
    needs_reauth: bool,
    retry_after: float | None,
) -> None:
    fake_graph.graph_error(code, status=status, subcode=subcode, details="why")
    with pytest.raises(SendError) as caught:
        send_one()
    error = caught.value
    assert (error.code, error.http_status, error.subcode) == (str(code), status, subcode)
    assert (error.permanent, error.needs_reauth, error.retry_after) == (permanent, needs_reauth, retry_after)
    assert error.fbtrace_id == f"Fake{code}Trace"
    assert "why" in error.message


@pytest.mark.parametrize("kind", ["messenger", "instagram"])
def test_an_expired_page_token_asks_for_reauthorization(fake_graph: FakeGraphAPI, kind: str) -> None:
    fake_graph.graph_error(190, status=401, message="Error validating access token")
    with pytest.raises(SendError) as caught:
        send_one(kind)
    assert caught.value.needs_reauth and caught.value.permanent


def test_a_429_honours_retry_after(fake_graph: FakeGraphAPI) -> None:
    fake_graph.fail(429, "slow down", headers={"Retry-After": "7"})
    with pytest.raises(SendError) as caught:
        send_one()
    assert (caught.value.permanent, caught.value.retry_after) == (False, 7.0)


def test_a_4xx_without_a_graph_body_is_permanent(fake_graph: FakeGraphAPI) -> None:
    fake_graph.fail(400, "not json")
    with pytest.raises(SendError) as caught:
        send_one()
    assert caught.value.permanent and caught.value.code == "http_400"


def test_a_timeout_is_transient(fake_graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = get_adapter("whatsapp")
    assert adapter.timeout == (5.0, 20.0)
    monkeypatch.setattr(adapter, "timeout", (2.0, 0.2))
    fake_graph.delay(3)
    with pytest.raises(SendError) as caught:
        send_one()
    assert (caught.value.code, caught.value.permanent) == ("timeout", False)


def test_an_unreachable_graph_api_is_transient(settings: Any) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.META_GRAPH_URL = f"http://127.0.0.1:{port}"
    with pytest.raises(SendError) as caught:
        send_one()
    assert (caught.value.code, caught.value.permanent) == ("connection_error", False)


def test_a_2xx_that_is_not_json_is_permanent_because_a_retry_could_duplicate(
    fake_graph: FakeGraphAPI,
) -> None:
    fake_graph.fail(200, "ok")
    with pytest.raises(SendError) as caught:
        send_one()
    assert (caught.value.code, caught.value.permanent) == ("invalid_response", True)


def test_a_failure_mid_split_reports_the_parts_already_sent(fake_graph: FakeGraphAPI) -> None:
    fake_graph.ok()  # part 1
    fake_graph.graph_error(131056)  # part 2: pair rate limit
    with pytest.raises(SendError) as caught:
        get_adapter("whatsapp").send(WA, "5511987654321", OutboundContent(text=words(1000)))
    assert [r.external_id for r in caught.value.sent] == ["wamid.1"]
    assert caught.value.transient
    assert len(fake_graph.requests) == 2


def test_the_api_channel_send_mints_an_id_without_any_http(fake_graph: FakeGraphAPI) -> None:
    [result] = get_adapter("api").send(WA, "cust-1", OutboundContent(text="Olá"))
    assert result.external_id.startswith("api.")
    assert fake_graph.requests == []


def test_credentials_never_show_the_token_in_repr() -> None:
    assert "wa-token" not in repr(WA)


def test_an_unknown_channel_kind_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        get_adapter("telegram")


def test_acknowledging_an_inbound_message_marks_it_read_and_shows_typing(fake_graph: FakeGraphAPI) -> None:
    get_adapter("whatsapp").acknowledge(WA, recipient="5511987654321", message_id="wamid.IN1")
    get_adapter("messenger").acknowledge(FB, recipient="7392015648120394", message_id="m_IN1")
    get_adapter("api").acknowledge(WA, recipient="cust-1", message_id="api.1")
    wa, seen, typing = fake_graph.bodies()
    assert wa["status"] == "read" and wa["typing_indicator"] == {"type": "text"}
    assert (seen["sender_action"], typing["sender_action"]) == ("mark_seen", "typing_on")


# Pieces that stress the cutter: multibyte letters, emoji sequences, flags, combining marks.
PIECES = ["a", "é", " ", "\n", ".", "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇧🇷", "中", "e\u0301"]
# No lone surrogates: text reaches the adapters from the database, which cannot hold them
# (inbound text is cleaned on the way in), and UTF-8 cannot encode them to send.
TEXTS = st.lists(st.sampled_from(PIECES) | st.characters(blacklist_categories=("Cs",)), max_size=300).map(
    "".join
)


@settings(max_examples=150, deadline=None, database=None)
@given(text=TEXTS, limit=st.integers(min_value=8, max_value=120), unit=st.sampled_from(["chars", "bytes"]))
def test_splitting_keeps_every_character_and_every_chunk_within_the_limit(
    text: str, limit: int, unit: Any
) -> None:
    chunks = split_text(text, limit, unit=unit)
    assert all(0 < measure(chunk, unit) <= limit for chunk in chunks)
    assert "".join("".join(chunks).split()) == "".join(text.split())
    head, tail = split_tail(text, limit, unit=unit)
    assert measure(tail, unit) <= limit
    assert "".join(f"{head}{tail}".split()) == "".join(text.split())
