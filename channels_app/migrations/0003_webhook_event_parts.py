"""Webhook events become platform records; each business sees only its own items.

Existing events were owned by the business of their first routed item, which
then saw every item of the body. Each is split here into one part per business,
by evidence from the time, never by today's accounts (an id may have moved to
another tenant since): a message goes to the business that stored it (the same
message id on an account of the event's channel), a status to the business
whose outbound message it reports on. Anything else (errors, watermarks, items
nobody stored) goes to no business and stays on the platform record.
"""

import json
from collections import defaultdict

import django.db.models.deletion
import icmp.ids
from django.db import migrations, models

from channels_app.adapters import get_adapter

NOT_SEPARATED = "stored before events were split per business; the items could not be separated"


def _owners(Message, account_ids, external_ids, **filters):
    """{external_id: (business_id, channel_account_id)} for ids exactly one business stored."""
    found = defaultdict(set)
    rows = Message.objects.filter(
        channel_account_id__in=account_ids, external_id__in=external_ids, **filters
    ).values_list("external_id", "business_id", "channel_account_id")
    for external_id, business_id, account_id in rows:
        found[external_id].add((business_id, account_id))
    # Two businesses with the same id is no evidence for either.
    return {key: next(iter(owners)) for key, owners in found.items() if len({b for b, _ in owners}) == 1}


def _parts_of(event, Message, account_ids):
    """{business_id: (first account id, raw items)} for the items a business stored at the time."""
    batch = get_adapter(event.channel).parse(json.loads(event.body))
    mids = {item.external_id for item in batch.messages if item.external_id}
    sids = {update.external_id for update in batch.statuses if update.external_id}
    received = _owners(Message, account_ids, mids) if mids else {}
    sent = _owners(Message, account_ids, sids, direction="out") if sids else {}
    parts = {}
    for key, items, owners in (("messages", batch.messages, received), ("statuses", batch.statuses, sent)):
        for item in items:
            owner = owners.get(item.external_id) if item.external_id else None
            if owner is None:
                continue
            business_id, account_id = owner
            kept = parts.setdefault(business_id, (account_id, {}))[1].setdefault(key, [])
            if item.raw not in kept:  # one receipt names several messages: its raw item once
                kept.append(item.raw)
    return parts


def split_events(apps, schema_editor):
    WebhookEvent = apps.get_model("channels_app", "WebhookEvent")
    WebhookEventPart = apps.get_model("channels_app", "WebhookEventPart")
    ChannelAccount = apps.get_model("channels_app", "ChannelAccount")
    Message = apps.get_model("conversations", "Message")
    # Once, not per event: the look-ups then probe the (channel_account, external_id) index.
    account_ids = defaultdict(list)
    for account_id, kind in ChannelAccount.objects.values_list("id", "kind"):
        account_ids[kind].append(account_id)
    events = WebhookEvent.objects.filter(business__isnull=False).order_by("created_at")
    for event in events.iterator(chunk_size=500):
        try:
            parts = _parts_of(event, Message, account_ids[event.channel])
        except Exception:  # a body the parser cannot read: its business keeps an empty view
            parts = {}
        if not parts:
            parts = {event.business_id: (event.channel_account_id, {})}
        for business_id, (account_id, items) in parts.items():
            WebhookEventPart.objects.create(
                event=event,
                business_id=business_id,
                channel=event.channel,
                channel_account_id=account_id,
                items=json.dumps(items, default=str),
                status="failed" if event.status == "failed" else "processed",
                error="" if items else NOT_SEPARATED,
            )
        WebhookEventPart.objects.filter(event=event).update(created_at=event.created_at)


def join_events(apps, schema_editor):
    WebhookEventPart = apps.get_model("channels_app", "WebhookEventPart")
    for part in WebhookEventPart.objects.order_by("event_id", "created_at").iterator(chunk_size=500):
        event = part.event
        if event.business_id is None:
            event.business_id = part.business_id
            event.channel_account_id = part.channel_account_id
            event.save(update_fields=["business", "channel_account"])


class Migration(migrations.Migration):
    dependencies = [
        ("businesses", "0002_history_budget_default"),
        ("channels_app", "0002_webhook_received_for"),
        # The stored messages are the evidence of whose an old item was.
        ("conversations", "0002_conversation_activity_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="WebhookEventPart",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=icmp.ids.uuid7, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "channel",
                    models.CharField(
                        choices=[
                            ("whatsapp", "WhatsApp"),
                            ("messenger", "Messenger"),
                            ("instagram", "Instagram"),
                            ("api", "API"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "items",
                    models.TextField(default="{}", help_text="JSON: this business's raw items of the event."),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[("processed", "Processed"), ("failed", "Failed")],
                        default="processed",
                        max_length=16,
                    ),
                ),
                ("error", models.TextField(blank=True)),
            ],
            options={
                "verbose_name": "webhook event",
                "ordering": ["-created_at"],
            },
        ),
        migrations.AlterModelOptions(
            name="webhookevent",
            options={"ordering": ["-created_at"], "verbose_name": "raw webhook event"},
        ),
        migrations.AddField(
            model_name="webhookeventpart",
            name="business",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="webhook_event_parts",
                to="businesses.business",
            ),
        ),
        migrations.AddField(
            model_name="webhookeventpart",
            name="channel_account",
            field=models.ForeignKey(
                blank=True,
                help_text="The first of the business's accounts the event's items were addressed to.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="webhook_event_parts",
                to="channels_app.channelaccount",
            ),
        ),
        migrations.AddField(
            model_name="webhookeventpart",
            name="event",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="parts",
                to="channels_app.webhookevent",
            ),
        ),
        migrations.AddIndex(
            model_name="webhookeventpart",
            index=models.Index(fields=["business", "-created_at"], name="webhook_part_business_created"),
        ),
        migrations.AddConstraint(
            model_name="webhookeventpart",
            constraint=models.UniqueConstraint(
                fields=("event", "business"), name="webhook_part_unique_business"
            ),
        ),
        migrations.AddConstraint(
            model_name="webhookeventpart",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["processed", "failed"])), name="webhook_part_status_valid"
            ),
        ),
        migrations.RunPython(split_events, join_events),
        migrations.RemoveIndex(
            model_name="webhookevent",
            name="webhook_business_created",
        ),
        migrations.RemoveField(
            model_name="webhookevent",
            name="business",
        ),
        migrations.RemoveField(
            model_name="webhookevent",
            name="channel_account",
        ),
    ]
