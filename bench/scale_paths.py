"""The read paths the scale benchmark times and EXPLAINs, and the clients that request them.

Every list a person or an integration opens often: the API's conversation list
(plain and with each filter), the transcript and the LLM-call list; the admin
inbox for a superuser (all businesses) and for the staff of one business, plain
and with each sidebar filter, including the needs-human badge's own link. Each
admin inbox page also runs the badge's count. Searches are timed and EXPLAINed
too, but kept out of the "no sequential scans" goal: a substring search of
names cannot use a B-tree index (`SEARCH` below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

API = "api"
SUPERUSER = "superuser"
STAFF = "staff"
STAFF_EMAIL = "staff@bench.example"
ADMIN_LIST = "/admin/conversations/conversation/"
API_LIST = "/api/v1/conversations/"
# The badge's link (conversations.admin.inbox): open conversations waiting for a person.
WAITING = {"needs_human__exact": "1", "status__exact": "open"}
SEARCH = "search"


@dataclass(frozen=True)
class Endpoint:
    path: str
    client: str  # API, SUPERUSER or STAFF
    kind: str = "list"  # or SEARCH (outside the no-seq-scan goal)


def _admin(query: dict[str, str] | None = None) -> str:
    return f"{ADMIN_LIST}?{urlencode(query)}" if query else ADMIN_LIST


def _api(query: dict[str, str]) -> str:
    return f"{API_LIST}?{urlencode(query)}"


def endpoints(business_id: Any) -> dict[str, Endpoint]:
    """Label → endpoint, for the tenant whose API key and staff member the bench uses."""
    from channels_app.models import ChannelAccount
    from conversations.models import Conversation
    from stages.models import Stage

    newest = Conversation.objects.filter(business_id=business_id).order_by("-last_message_at", "-id").first()
    stage = Stage.objects.get(business_id=business_id, is_initial=True)
    account = ChannelAccount.objects.filter(business_id=business_id).first()
    contact = newest.contact.name  # "Customer <n>": matches one contact (and its prefixes)
    return {
        "conversation list API": Endpoint(API_LIST, API),
        "conversation list API, needs human": Endpoint(_api({"needs_human": "true"}), API),
        "conversation list API, open": Endpoint(_api({"status": "open"}), API),
        "conversation list API, AI paused": Endpoint(_api({"ai_mode": "paused"}), API),
        "conversation list API, channel": Endpoint(_api({"channel": "whatsapp"}), API),
        "conversation list API, stage": Endpoint(_api({"stage": stage.key}), API),
        "conversation list API, search": Endpoint(_api({"q": contact}), API, SEARCH),
        "transcript API": Endpoint(f"/api/v1/conversations/{newest.pk}/messages/", API),
        "LLM call list API": Endpoint("/api/v1/llm-calls/", API),
        "admin conversation list": Endpoint(_admin(), SUPERUSER),
        "admin list, waiting (badge link)": Endpoint(_admin(WAITING), SUPERUSER),
        "admin list, needs human": Endpoint(_admin({"needs_human__exact": "1"}), SUPERUSER),
        "admin list, open": Endpoint(_admin({"status__exact": "open"}), SUPERUSER),
        "admin list, AI paused": Endpoint(_admin({"ai_mode__exact": "paused"}), SUPERUSER),
        "admin list, channel": Endpoint(_admin({"channel": "whatsapp"}), SUPERUSER),
        "admin list, past 7 days": Endpoint(_admin({"activity": "7d"}), SUPERUSER),
        "admin list, one business": Endpoint(_admin({"business__id__exact": str(business_id)}), SUPERUSER),
        "admin list, stage": Endpoint(_admin({"stage__id__exact": str(stage.pk)}), SUPERUSER),
        "admin list, channel account": Endpoint(
            _admin({"channel_account__id__exact": str(account.pk)}), SUPERUSER
        ),
        "admin list, search": Endpoint(_admin({"q": contact}), SUPERUSER, SEARCH),
        "staff admin list": Endpoint(_admin(), STAFF),
        "staff admin list, waiting (badge link)": Endpoint(_admin(WAITING), STAFF),
        "staff admin list, needs human": Endpoint(_admin({"needs_human__exact": "1"}), STAFF),
        "staff admin list, AI paused": Endpoint(_admin({"ai_mode__exact": "paused"}), STAFF),
        "staff admin list, search": Endpoint(_admin({"q": contact}), STAFF, SEARCH),
    }


def clients(business_id: Any, api_key: str) -> dict[str, Any]:
    """A client for each kind: the API key's, a superuser's and an editor's of the one business."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from businesses.models import Business
    from businesses.services import membership_add

    user_model = get_user_model()
    admin = user_model.objects.filter(username="bench-admin").first() or user_model.objects.create_superuser(
        "bench-admin", "admin@bench.example", "bench-password-0123"
    )
    membership, _ = membership_add(
        business=Business.objects.get(pk=business_id), email=STAFF_EMAIL, role="editor"
    )
    superuser = Client(SERVER_NAME="localhost")
    superuser.force_login(admin)
    staff = Client(SERVER_NAME="localhost")
    staff.force_login(membership.user)
    api = Client(SERVER_NAME="localhost", HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return {API: api, SUPERUSER: superuser, STAFF: staff}
