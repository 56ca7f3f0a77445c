"""Who may do what to each kind of tenant data: the one table both doors obey.

The REST API (`icmp.api.permissions`) and the back office
(`icmp.admin_tenancy`) read their role checks from `ACCESS`, so a role can
never do in one door what the other refuses. Rows are keyed by model label and
name fields as strings: icmp stays free of imports from the domain apps.

Per model: the roles that may view, add, change and delete a business's rows,
the fields a role allowed to add may set (`add_fields`, the business itself
comes from the caller) and the fields a role allowed to change may change
(`change_fields`). Every role allowed to write a model may write the same
fields. `platform` lists what superusers may do in the back office: platform
decisions (creating businesses, changing their owner) and clean-up of system
records. Keys and superusers calling the API for one business have that
business's full rights: whatever some role may do.

A door may offer less than its row allows (the API has no route to close a
conversation), never more; `tests/admin/test_admin_access.py` and
`tests/api/test_api_access.py` walk both doors against this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from businesses.models import EDIT_ROLES, MANAGE_ROLES, Role

Action = Literal["view", "add", "change", "delete"]
ACTIONS: tuple[Action, ...] = ("view", "add", "change", "delete")
ALL_ROLES = frozenset(Role)
NOBODY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Access:
    view: frozenset[str] = ALL_ROLES
    add: frozenset[str] = NOBODY
    change: frozenset[str] = NOBODY
    delete: frozenset[str] = NOBODY
    add_fields: tuple[str, ...] = ()
    change_fields: tuple[str, ...] = ()
    platform: frozenset[Action] = frozenset(ACTIONS)

    def roles(self, action: Action) -> frozenset[str]:
        return getattr(self, action)

    @property
    def writers(self) -> frozenset[str]:
        """Roles that fill in a form of this model: they pick its business and related rows."""
        return self.add | self.change

    def fields(self, action: Action) -> tuple[str, ...]:
        return {"add": self.add_fields, "change": self.change_fields}.get(action, ())


def _editable(roles: frozenset[str], fields: tuple[str, ...], **kwargs) -> Access:
    """Rows the `roles` add, change and delete, setting `fields` both ways."""
    return Access(add=roles, change=roles, delete=roles, add_fields=fields, change_fields=fields, **kwargs)


# Written by the system (webhooks, the pipeline): read by members, cleaned up by superusers.
_SYSTEM_RECORD = Access(platform=frozenset({"view", "delete"}))

_AGENT_FIELDS = ("name", "persona", "instructions", "model", "temperature", "max_tokens", "is_default")
_AI_SETTINGS_FIELDS = (
    "auto_reply_enabled",
    "burst_window_seconds",
    "fallback_text",
    "history_token_budget",
    "monthly_token_budget",
    "max_turns_per_conversation",
    "whatsapp_window_template",
    "whatsapp_window_template_language",
)
_STAGE_FIELDS = (
    "key",
    "name",
    "description",
    "order",
    "is_initial",
    "is_handoff",
    "data_schema",
    "selection_template",
    "extraction_template",
    "response_template",
)
_TEMPLATE_FIELDS = ("name", "description", "content", "is_default")
_CHANNEL_SECRETS = ("access_token", "app_secret", "verify_token")
_CHANNEL_FIELDS = ("external_id", "name", "is_active", "agent", *_CHANNEL_SECRETS)

ACCESS: dict[str, Access] = {
    # Businesses are created and deleted by the platform; slug, owner and
    # activity are platform decisions too.
    "businesses.business": Access(change=MANAGE_ROLES, change_fields=("name", "config")),
    # Who holds the owner role is further guarded by businesses.memberships:
    # only owners grant or take it, one owner always remains, nobody changes
    # their own membership.
    "businesses.membership": Access(
        add=MANAGE_ROLES,
        change=MANAGE_ROLES,
        delete=MANAGE_ROLES,
        add_fields=("user", "role"),
        change_fields=("role",),
    ),
    "businesses.agent": _editable(EDIT_ROLES, _AGENT_FIELDS),
    # A key's secret, name and expiry are fixed when it is made; changing a
    # key means revoking it (a change) or deleting it.
    "businesses.apikey": Access(
        add=MANAGE_ROLES,
        change=MANAGE_ROLES,
        delete=MANAGE_ROLES,
        add_fields=("name", "expires_at"),
    ),
    # Every business has its settings from birth; the API upserts them.
    "businesses.aicontrolsettings": Access(
        add=MANAGE_ROLES,
        change=MANAGE_ROLES,
        add_fields=_AI_SETTINGS_FIELDS,
        change_fields=_AI_SETTINGS_FIELDS,
    ),
    "stages.stage": _editable(EDIT_ROLES, _STAGE_FIELDS),
    # The kind is chosen once: stages, the ledger and the history rely on it.
    "templates_app.prompttemplate": Access(
        add=EDIT_ROLES,
        change=EDIT_ROLES,
        delete=EDIT_ROLES,
        add_fields=("kind", *_TEMPLATE_FIELDS),
        change_fields=_TEMPLATE_FIELDS,
    ),
    # Channel accounts carry the business's Meta credentials: owners and admins only.
    "channels_app.channelaccount": Access(
        add=MANAGE_ROLES,
        change=MANAGE_ROLES,
        delete=MANAGE_ROLES,
        add_fields=("kind", *_CHANNEL_FIELDS),
        change_fields=_CHANNEL_FIELDS,
    ),
    # A raw body may carry several businesses' customers: the platform's alone.
    "channels_app.webhookevent": Access(view=NOBODY, platform=frozenset({"view", "delete"})),
    # Each business's own items of an event.
    "channels_app.webhookeventpart": _SYSTEM_RECORD,
    # Contacts arrive through the channels; staff only rename them. Deleting
    # one would delete its conversations, which nobody in a business may do.
    "conversations.contact": Access(change=EDIT_ROLES, change_fields=("name",)),
    # Staff take over, hand back, close and move conversations; they start
    # when a customer writes and are never deleted by a business.
    "conversations.conversation": Access(
        change=EDIT_ROLES,
        change_fields=("ai_mode", "needs_human", "handoff_reason", "status", "stage"),
        platform=frozenset({"view", "change", "delete"}),
    ),
    "conversations.message": _SYSTEM_RECORD,
    "conversations.llmcall": _SYSTEM_RECORD,
}


def access_for(label: str) -> Access:
    """The row of `label` ("app_label.modelname"); a model without one is a KeyError, never open."""
    return ACCESS[label]


def roles_allow(role: str | None, roles: frozenset[str]) -> bool:
    """Whether `role` is among `roles`. None is a business API key (or a superuser's
    API session): the business's full rights, whatever some role may do."""
    return bool(roles) if role is None else role in roles


def role_may(role: str | None, label: str, action: Action) -> bool:
    """Whether a member with `role` may do `action` on the model `label`."""
    return roles_allow(role, access_for(label).roles(action))
