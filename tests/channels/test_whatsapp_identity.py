"""WhatsApp customers who hide their number: BSUIDs, usernames, identity changes, edits and revokes.

Every payload goes through the real signed webhook URL; fixtures are in
tests/fixtures/whatsapp/ (shapes: docs/whatsapp-identity.md).
"""

from __future__ import annotations

import copy

import pytest
from django.core.management import call_command

from channels_app.adapters import get_adapter
from channels_app.adapters.whatsapp.send import address
from channels_app.models import ChannelAccount, WebhookEventStatus
from conversations.models import (
    Author,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
)
from tests.channels import fixture
from tests.channels.webhook_helpers import last_event, post_fixture, post_json

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("meta_app")]

BSUID = "US.13491208655302741918"
NEW_BSUID = "US.55566677788899900011"
ANA_BSUID = "BR.80011122233344455566"
ANA = "5511987654321"


@pytest.fixture
def number(accounts):
    return accounts["whatsapp"]


def contacts_of(account) -> list[Contact]:
    return list(Contact.objects.filter(channel_account=account).order_by("created_at"))


def with_message(name: str, **changes) -> dict:
    payload = copy.deepcopy(fixture("whatsapp", name))
    payload["entry"][0]["changes"][0]["value"]["messages"][0].update(changes)
    return payload


# -- receiving ---------------------------------------------------------------------------


def test_a_customer_who_withholds_the_number_is_stored_and_queued(
    number, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert post_fixture("whatsapp", "number_withheld").status_code == 200

    assert last_event().status == WebhookEventStatus.PROCESSED
    message = Message.objects.get(channel_account=number, external_id="wamid.U1")
    contact = message.conversation.contact
    assert (contact.external_id, contact.bsuid, contact.phone) == (BSUID, BSUID, None)
    assert (contact.name, contact.username, contact.address) == ("Bia", "bia.flowers", BSUID)
    assert message.status == MessageStatus.RECEIVED
    assert enqueued == [message.conversation_id]


def test_a_number_and_a_bsuid_are_both_kept_and_the_bsuid_is_the_key(number):
    post_fixture("whatsapp", "number_and_bsuid")

    (contact,) = contacts_of(number)
    assert (contact.external_id, contact.bsuid, contact.phone) == (ANA_BSUID, ANA_BSUID, ANA)
    assert contact.address == ANA  # Meta prefers the number when there is one


def test_a_parent_bsuid_is_stored(number):
    post_fixture("whatsapp", "parent_bsuid")

    (contact,) = contacts_of(number)
    assert (contact.bsuid, contact.parent_bsuid) == ("MX.22233344455566677788", "MX.ENT.99988877766655544433")


def test_a_contact_known_by_number_that_arrives_with_a_bsuid_stays_one_contact(number):
    post_fixture("whatsapp", "text")  # Ana by number only, as before usernames
    (before,) = contacts_of(number)
    assert (before.external_id, before.phone, before.bsuid) == (ANA, ANA, None)

    post_fixture("whatsapp", "number_and_bsuid")
    # Later, Ana hides her number: only the BSUID arrives.
    hidden = fixture("whatsapp", "number_withheld")
    hidden["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = ANA_BSUID
    hidden["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.U1b"
    post_json("whatsapp", hidden)

    (contact,) = contacts_of(number)
    assert contact.pk == before.pk
    assert (contact.external_id, contact.phone, contact.bsuid) == (ANA_BSUID, ANA, ANA_BSUID)
    assert Conversation.objects.filter(contact=contact, status=ConversationStatus.OPEN).count() == 1
    assert Message.objects.filter(conversation__contact=contact).count() == 3


def test_two_contacts_that_turn_out_to_be_one_person_are_merged_with_one_open_conversation(number, enqueued):
    withheld = fixture("whatsapp", "number_withheld")
    withheld["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = ANA_BSUID
    post_json("whatsapp", withheld)  # first by BSUID only
    post_fixture("whatsapp", "text")  # then by number only (an older client)
    first, second = contacts_of(number)
    assert (first.bsuid, second.phone) == (ANA_BSUID, ANA)

    post_fixture("whatsapp", "number_and_bsuid")  # both: the same person

    (contact,) = contacts_of(number)
    assert contact.pk == first.pk  # the older one survives
    assert (contact.phone, contact.bsuid, contact.external_id) == (ANA, ANA_BSUID, ANA_BSUID)
    open_ = Conversation.objects.get(contact=contact, status=ConversationStatus.OPEN)
    # Every unanswered message waits in the one open conversation.
    assert set(
        Message.objects.filter(status=MessageStatus.RECEIVED).values_list("conversation", flat=True)
    ) == {open_.pk}
    assert Message.objects.filter(conversation__contact=contact).count() == 3


def test_a_recycled_number_leaves_its_previous_owner(number):
    post_fixture("whatsapp", "number_and_bsuid")  # Ana: number + her BSUID
    stranger = fixture("whatsapp", "number_and_bsuid")
    value = stranger["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = value["messages"][0]["from_user_id"] = "BR.12312312312312312312"
    value["messages"][0]["id"] = "wamid.U2b"

    post_json("whatsapp", stranger)

    ana, newcomer = contacts_of(number)
    assert (ana.bsuid, ana.phone) == (ANA_BSUID, None)
    assert (newcomer.bsuid, newcomer.phone) == ("BR.12312312312312312312", ANA)


def test_a_message_with_no_sender_at_all_fails_its_event_and_is_replayable(alice, number):
    assert post_fixture("whatsapp", "no_sender").status_code == 200

    event = last_event()
    assert event.status == WebhookEventStatus.FAILED
    assert "names no sender" in event.error
    part = event.parts.get()
    assert part.status == "failed" and "wamid.U9" in part.error  # staff see it in their events
    assert "Who am I?" in part.items
    assert not Message.objects.filter(external_id="wamid.U9").exists()
    call_command("replay_webhooks", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert last_event().status == WebhookEventStatus.FAILED  # still nothing to answer it with


def test_a_delivery_status_with_only_the_bsuid_updates_our_message(alice, number):
    post_fixture("whatsapp", "number_withheld")
    conversation = Conversation.objects.get(channel_account=number)
    ours = Message.objects.create(
        business=alice.business,
        conversation=conversation,
        channel_account=number,
        direction=Direction.OUT,
        author=Author.AI,
        status=MessageStatus.SENT,
        text="Yes, we do.",
        external_id="wamid.OUT_BSUID",
    )

    post_fixture("whatsapp", "status_user_id")

    ours.refresh_from_db()
    assert ours.status == MessageStatus.DELIVERED
    assert last_event().status == WebhookEventStatus.PROCESSED


@pytest.mark.parametrize("recipient", ["recipient_id", "recipient_user_id", None])
def test_statuses_parse_whichever_recipient_they_name(recipient):
    payload = fixture("whatsapp", "status_delivered")
    status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    status.pop("recipient_id", None)
    if recipient:
        status[recipient] = ANA if recipient == "recipient_id" else BSUID
    (update,) = get_adapter("whatsapp").parse(payload).statuses
    assert update.external_id == status["id"]


# -- identity changes ----------------------------------------------------------------------


@pytest.mark.parametrize("announcement", ["user_id_update", "system_user_id"])
def test_a_new_bsuid_moves_the_contact_and_later_messages_find_it(number, announcement):
    post_fixture("whatsapp", "number_withheld")
    (before,) = contacts_of(number)

    post_fixture("whatsapp", announcement)

    assert last_event().status == WebhookEventStatus.PROCESSED
    (after,) = contacts_of(number)
    assert after.pk == before.pk
    assert (after.bsuid, after.external_id) == (NEW_BSUID, NEW_BSUID)
    again = fixture("whatsapp", "number_withheld")
    again["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = NEW_BSUID
    again["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.U10"
    post_json("whatsapp", again)
    assert contacts_of(number) == [before]
    assert Conversation.objects.filter(contact=before).count() == 1


def test_a_number_change_announcement_moves_the_number(number):
    post_fixture("whatsapp", "text")  # Ana at 5511987654321

    post_fixture("whatsapp", "system")  # "changed from 5511987654321 to 5511900000000"

    (contact,) = contacts_of(number)
    assert contact.phone == "5511900000000"
    assert not Message.objects.filter(external_id="wamid.A16").exists()  # not a customer message


def test_an_announcement_for_a_customer_we_never_met_is_a_noted_no_op(number):
    post_fixture("whatsapp", "user_id_update")

    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    assert "not met" in event.parts.get().error
    assert contacts_of(number) == []


# -- edits and revokes -------------------------------------------------------------------


def test_an_edit_of_an_unanswered_message_replaces_its_text_for_the_turn(
    number, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_fixture("whatsapp", "number_withheld")
        post_fixture("whatsapp", "edit")
        post_fixture("whatsapp", "edit")  # Meta redelivers

    message = Message.objects.get(channel_account=number, external_id="wamid.U1")
    assert message.text == "Oi! Do you deliver on Saturdays?"
    assert message.status == MessageStatus.RECEIVED  # the pending turn reads the edited text
    assert [(e["id"], e["text"]) for e in message.payload["edits"]] == [
        ("wamid.U7", "Oi! Do you deliver on Sundays?")
    ]
    assert not Message.objects.filter(external_id="wamid.U7").exists()
    assert Message.objects.filter(channel_account=number).count() == 1
    assert len(enqueued) == 1  # the edit queues no second turn


def test_an_edit_of_an_answered_message_updates_the_record_without_a_new_turn(number, enqueued):
    post_fixture("whatsapp", "number_withheld")
    Message.objects.filter(external_id="wamid.U1").update(status=MessageStatus.ANSWERED)
    enqueued.clear()

    post_fixture("whatsapp", "edit")

    message = Message.objects.get(external_id="wamid.U1")
    assert (message.text, message.status) == ("Oi! Do you deliver on Saturdays?", MessageStatus.ANSWERED)
    assert enqueued == []


def test_a_revoke_clears_the_original_and_the_pending_turn_skips_it(number):
    post_fixture("whatsapp", "number_withheld")
    post_fixture("whatsapp", "edit")

    post_fixture("whatsapp", "revoke")

    message = Message.objects.get(external_id="wamid.U1")
    assert message.text == ""
    assert message.payload.get("revoked") is True and "edits" not in message.payload
    assert message.status == MessageStatus.SKIPPED
    assert not Message.objects.filter(external_id="wamid.U8").exists()


@pytest.mark.parametrize("kind", ["edit", "revoke"])
def test_an_edit_or_revoke_of_an_unknown_message_is_a_noted_no_op(number, kind):
    post_fixture("whatsapp", kind)

    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    assert "unknown" in event.parts.get().error
    assert not Message.objects.filter(channel_account=number).exists()


# -- sending -----------------------------------------------------------------------------


def test_replies_go_to_the_number_when_known_and_to_the_bsuid_otherwise():
    assert address(ANA) == {"to": ANA}
    assert address(BSUID) == {"recipient": BSUID}
    assert address("US.ENT.1181000000000000") == {"recipient": "US.ENT.1181000000000000"}


# -- an old database -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_existing_whatsapp_contacts_keyed_by_number_get_their_phone_in_place(alice):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        [("conversations", "0002_conversation_activity_index")],
        [("conversations", "0003_contact_whatsapp_identity")],
    )
    page = ChannelAccount.objects.create(
        business=alice.business, kind="messenger", external_id="4400", name="P"
    )
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    OldContact = executor.loader.project_state(before).apps.get_model("conversations", "Contact")
    by_number = OldContact.objects.create(
        business_id=alice.business.pk, channel_account_id=alice.channel.pk, external_id=ANA, name="Ana"
    )
    on_messenger = OldContact.objects.create(
        business_id=alice.business.pk, channel_account_id=page.pk, external_id="7392015648120394"
    )
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps.get_model("conversations", "Contact")
        migrated = new.objects.get(pk=by_number.pk)
        assert (migrated.external_id, migrated.phone, migrated.bsuid) == (ANA, ANA, None)
        assert new.objects.get(pk=on_messenger.pk).phone is None
    finally:
        MigrationExecutor(connection).migrate(leaves)


def test_staff_see_the_username_and_find_the_conversation_by_any_id(alice, number):
    from django.test import Client

    from tests.admin import admin_url

    post_fixture("whatsapp", "number_withheld")
    conversation = Conversation.objects.get(channel_account=number)
    client = Client()
    client.force_login(alice.owner)

    for query in ("bia.flowers", BSUID):
        page = client.get(admin_url(Conversation, "changelist"), {"q": query})
        assert admin_url(conversation, "change") in page.content.decode(), query
    contact_page = client.get(admin_url(conversation.contact, "change")).content.decode()
    assert "bia.flowers" in contact_page and BSUID in contact_page
    assert "number not shared" in client.get(admin_url(conversation, "change")).content.decode()


# -- identity edge cases found in review ---------------------------------------------------


def _number_and_bsuid(number_: str, bsuid: str, wamid: str) -> dict:
    payload = fixture("whatsapp", "number_and_bsuid")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0].update(wa_id=number_, user_id=bsuid)
    value["messages"][0].update({"from": number_, "from_user_id": bsuid, "id": wamid})
    return payload


def test_an_old_number_recycled_to_a_stranger_never_reaches_the_previous_owner(number):
    post_fixture("whatsapp", "text")  # Ana at 5511987654321, by number only
    post_fixture("whatsapp", "system")  # Ana moves to 5511900000000
    (ana,) = contacts_of(number)

    post_json("whatsapp", _number_and_bsuid(ANA, "BR.77777777777777777777", "wamid.STRANGER"))

    ana.refresh_from_db()
    assert (ana.phone, ana.external_id) == ("5511900000000", "5511900000000")
    stranger = Contact.objects.get(bsuid="BR.77777777777777777777")
    assert stranger != ana and stranger.phone == ANA
    assert Message.objects.get(external_id="wamid.STRANGER").conversation.contact == stranger


def test_a_contact_whose_only_number_went_to_someone_else_is_no_longer_addressed(alice, number):
    old_owner = fixture("whatsapp", "text")
    value = old_owner["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = value["messages"][0]["from"] = "5511900000000"
    value["messages"][0]["id"] = "wamid.OLD_OWNER"
    post_json("whatsapp", old_owner)  # someone known only by 5511900000000
    post_fixture("whatsapp", "number_and_bsuid")  # Ana, number and BSUID
    old = Contact.objects.get(phone="5511900000000")
    ana = Contact.objects.get(bsuid=ANA_BSUID)

    post_fixture("whatsapp", "system")  # Ana's number is now 5511900000000

    old.refresh_from_db()
    assert old.phone is None and old.external_id.startswith("released.") and old.address == ""
    assert Contact.objects.get(phone="5511900000000") == ana
    # Ana writes from her new number (with her new BSUID): her contact, not the old owner's.
    post_json("whatsapp", _number_and_bsuid("5511900000000", "BR.80000000000000000002", "wamid.ANA2"))
    assert Message.objects.get(external_id="wamid.ANA2").conversation.contact == ana

    from conversations.outbound import message_outbound_create, message_send

    conversation = Conversation.objects.get(contact=old)
    reply = message_outbound_create(conversation=conversation, author=Author.STAFF, text="Hi", enqueue=False)
    assert message_send(message_id=reply.pk).status == MessageStatus.FAILED
    reply.refresh_from_db()
    assert "cannot be reached" in reply.error


def test_a_number_change_announced_without_bsuids_keeps_one_contact(number):
    post_fixture("whatsapp", "number_and_bsuid")  # Ana: her number and BSUID
    (ana,) = contacts_of(number)
    change = fixture("whatsapp", "system")  # user_changed_number, no BSUIDs in it
    post_json("whatsapp", change)

    post_json("whatsapp", _number_and_bsuid("5511900000000", "BR.80000000000000000001", "wamid.NEW"))

    assert contacts_of(number) == [ana]
    ana.refresh_from_db()
    assert (ana.phone, ana.bsuid) == ("5511900000000", "BR.80000000000000000001")


def test_a_message_from_the_old_id_in_the_same_batch_as_the_update_stays_with_its_contact(number):
    post_fixture("whatsapp", "number_withheld")
    batch = fixture("whatsapp", "number_withheld")
    value = batch["entry"][0]["changes"][0]["value"]
    value["messages"][0]["id"] = "wamid.OLD_ID"
    update = fixture("whatsapp", "system_user_id")["entry"][0]["changes"][0]["value"]["messages"][0]
    value["messages"].insert(0, update)  # the announcement first, the old-id message after it

    post_json("whatsapp", batch)

    (contact,) = contacts_of(number)
    assert contact.bsuid == NEW_BSUID
    assert Message.objects.get(external_id="wamid.OLD_ID").conversation.contact == contact


def test_a_merge_keeps_a_staff_takeover_of_either_conversation(number, enqueued):
    withheld = fixture("whatsapp", "number_withheld")
    withheld["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = ANA_BSUID
    post_json("whatsapp", withheld)
    post_fixture("whatsapp", "text")
    by_bsuid, by_number = contacts_of(number)
    Conversation.objects.filter(contact=by_number).update(
        ai_mode="paused", needs_human=True, handoff_reason="Staff took over", collected_data={"name": "Ana"}
    )

    post_fixture("whatsapp", "number_and_bsuid")

    conversation = Conversation.objects.get(contact=by_bsuid, status=ConversationStatus.OPEN)
    assert (conversation.ai_mode, conversation.needs_human) == ("paused", True)
    assert conversation.handoff_reason == "Staff took over"
    assert conversation.collected_data == {"name": "Ana"}


def test_a_merge_by_announcement_queues_a_turn_for_the_messages_it_moved(
    number, enqueued, django_capture_on_commit_callbacks
):
    post_fixture("whatsapp", "number_withheld")  # B1: wamid.U1 waits for its turn
    moved = fixture("whatsapp", "number_withheld")
    value = moved["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = NEW_BSUID
    value["messages"][0]["id"] = "wamid.FROM_NEW_ID"
    post_json("whatsapp", moved)  # the customer writes from the new id before the announcement
    assert len(contacts_of(number)) == 2
    enqueued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        post_fixture("whatsapp", "system_user_id")

    (contact,) = contacts_of(number)
    conversation = Conversation.objects.get(contact=contact, status=ConversationStatus.OPEN)
    assert enqueued == [conversation.pk]
    assert set(
        Message.objects.filter(channel_account=number, status=MessageStatus.RECEIVED).values_list(
            "conversation_id", flat=True
        )
    ) == {conversation.pk}
