"""Webhook events become platform records; each business sees only its own items.

Existing events were owned by the business of their first routed item, which
then saw every item of the body. Each is split here into one part per business
its items route to (by the accounts' Meta ids), through the channel's parser.
"""

import json

import django.db.models.deletion
import icmp.ids
from django.db import migrations, models

from channels_app.adapters import get_adapter


def _parts_of(event, accounts):
    """{business_id: (first account, raw items)} for the items routed to known accounts."""
    batch = get_adapter(event.channel).parse(json.loads(event.body))
    parts = {}
    for key, items in (("messages", batch.messages), ("statuses", batch.statuses), ("errors", batch.errors)):
        for item in items:
            account = accounts.get(item.routing_id)
            if account is None:
                continue
            part = parts.setdefault(account.business_id, (account, {}))
            part[1].setdefault(key, []).append(item.raw)
    return parts


def split_events(apps, schema_editor):
    WebhookEvent = apps.get_model("channels_app", "WebhookEvent")
    WebhookEventPart = apps.get_model("channels_app", "WebhookEventPart")
    ChannelAccount = apps.get_model("channels_app", "ChannelAccount")
    events = WebhookEvent.objects.filter(business__isnull=False).order_by("created_at")
    for event in events.iterator(chunk_size=500):
        accounts = {
            account.external_id: account for account in ChannelAccount.objects.filter(kind=event.channel)
        }
        try:
            parts = _parts_of(event, accounts)
        except Exception:  # a body the parser cannot read: its business keeps an empty view
            parts = {}
        if not parts:
            parts = {event.business_id: (None, {})}
        for business_id, (account, items) in parts.items():
            WebhookEventPart.objects.create(
                event=event,
                business_id=business_id,
                channel=event.channel,
                channel_account=account or event.channel_account,
                items=json.dumps(items, default=str),
                status="failed" if event.status == "failed" else "processed",
                error="" if items else "stored before events were split per business; "
                "the items could not be separated",
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
        ('businesses', '0002_history_budget_default'),
        ('channels_app', '0002_webhook_received_for'),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookEventPart',
            fields=[
                ('id', models.UUIDField(default=icmp.ids.uuid7, editable=False, primary_key=True, serialize=False)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('channel', models.CharField(choices=[('whatsapp', 'WhatsApp'), ('messenger', 'Messenger'), ('instagram', 'Instagram'), ('api', 'API')], max_length=16)),
                ('items', models.TextField(default='{}', help_text="JSON: this business's raw items of the event.")),
                ('status', models.CharField(choices=[('processed', 'Processed'), ('failed', 'Failed')], default='processed', max_length=16)),
                ('error', models.TextField(blank=True)),
            ],
            options={
                'verbose_name': 'webhook event',
                'ordering': ['-created_at'],
            },
        ),
        migrations.AlterModelOptions(
            name='webhookevent',
            options={'ordering': ['-created_at'], 'verbose_name': 'raw webhook event'},
        ),
        migrations.AddField(
            model_name='webhookeventpart',
            name='business',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='webhook_event_parts', to='businesses.business'),
        ),
        migrations.AddField(
            model_name='webhookeventpart',
            name='channel_account',
            field=models.ForeignKey(blank=True, help_text="The first of the business's accounts the event's items were addressed to.", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='webhook_event_parts', to='channels_app.channelaccount'),
        ),
        migrations.AddField(
            model_name='webhookeventpart',
            name='event',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='parts', to='channels_app.webhookevent'),
        ),
        migrations.AddIndex(
            model_name='webhookeventpart',
            index=models.Index(fields=['business', '-created_at'], name='webhook_part_business_created'),
        ),
        migrations.AddConstraint(
            model_name='webhookeventpart',
            constraint=models.UniqueConstraint(fields=('event', 'business'), name='webhook_part_unique_business'),
        ),
        migrations.AddConstraint(
            model_name='webhookeventpart',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['processed', 'failed'])), name='webhook_part_status_valid'),
        ),
        migrations.RunPython(split_events, join_events),
        migrations.RemoveIndex(
            model_name='webhookevent',
            name='webhook_business_created',
        ),
        migrations.RemoveField(
            model_name='webhookevent',
            name='business',
        ),
        migrations.RemoveField(
            model_name='webhookevent',
            name='channel_account',
        ),
    ]
