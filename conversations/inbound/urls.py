"""Webhook routes, included at "webhooks/".

/webhooks/<channel>/ is verified with META_APP_SECRET / META_VERIFY_TOKEN;
/webhooks/<channel>/<account uuid>/ with that account's own secret and token
(falling back to the settings), for accounts that live in another Meta app.
"""

from django.urls import path

from channels_app.models import ChannelKind
from conversations.inbound import views

META_CHANNELS = (ChannelKind.WHATSAPP, ChannelKind.MESSENGER, ChannelKind.INSTAGRAM)

urlpatterns = [
    route
    for kind in META_CHANNELS
    for route in (
        path(f"{kind}/", views.meta_webhook, {"channel": kind.value}, name=f"webhook-{kind}"),
        path(
            f"{kind}/<uuid:account_id>/",
            views.meta_webhook,
            {"channel": kind.value},
            name=f"webhook-{kind}-account",
        ),
    )
]
