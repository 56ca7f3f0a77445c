"""The demo world `make run` starts with: an admin login and a small business whose
stages show off the pipeline (greeting → qualification → booking, and a handoff)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from businesses.models import Agent, Business
from businesses.services import business_create
from channels_app.models import ChannelKind
from channels_app.services import channel_account_create
from stages.models import Stage
from stages.services import stage_create, stage_delete

ADMIN_USERNAME = "admin"
DEMO_SLUG = "demo"
DEMO_NAME = "Demo Business"
DEMO_OWNER_EMAIL = "demo@example.com"

DEMO_CONFIG: dict[str, Any] = {
    "description": (
        "Demo Business is a small consultancy that helps independent shops take bookings online. "
        "The first consultation is a free 30-minute video call."
    ),
    "website": "https://example.com",
    "language": "en",
    "timezone": "Europe/London",
    "tone": "Warm, clear and brief.",
    "contact": {"email": "hello@example.com", "phone": "+44 20 7946 0000"},
    "opening_hours": {
        "mon": "09:00-17:30",
        "tue": "09:00-17:30",
        "wed": "09:00-17:30",
        "thu": "09:00-17:30",
        "fri": "09:00-16:00",
        "sat": "closed",
        "sun": "closed",
    },
    "faq": [
        {
            "question": "How much does a consultation cost?",
            "answer": "The first 30-minute video call is free; follow-up sessions cost £60 per hour.",
        },
        {
            "question": "Where do consultations take place?",
            "answer": "Online, by video call. The link is emailed after booking.",
        },
    ],
}

DEMO_PERSONA = "Sunny: friendly, upbeat and to the point. Uses the customer's first name once known."
DEMO_INSTRUCTIONS = (
    "Help customers book the free 30-minute consultation. Only offer times within opening hours."
)

DEMO_STAGES: list[dict[str, Any]] = [
    {
        "key": "greeting",
        "name": "Greeting",
        "description": (
            "The conversation starts: the customer says hello or asks a general question, "
            "and has not yet said they want help or a consultation."
        ),
        "is_initial": True,
    },
    {
        "key": "qualification",
        "name": "Qualification",
        "description": (
            "The customer wants help or a consultation. Learn their name, their email and "
            "what they need help with."
        ),
        "data_schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Full name"},
                "email": {
                    "type": "string",
                    "format": "email",
                    "maxLength": 254,
                    "description": "Email for the booking confirmation",
                },
                "need": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1000,
                    "description": "What they need help with, in a sentence",
                },
            },
            "required": ["name", "email", "need"],
            "additionalProperties": False,
        },
    },
    {
        "key": "booking",
        "name": "Booking",
        "description": (
            "The customer wants to book the free video call: agree on a date and a start time "
            "within opening hours."
        ),
        "data_schema": {
            "type": "object",
            "properties": {
                "date": {"type": "string", "format": "date", "description": "Day of the call (YYYY-MM-DD)"},
                "time": {
                    "type": "string",
                    "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
                    "description": "Start time (HH:MM, 24-hour)",
                },
            },
            "required": ["date", "time"],
            "additionalProperties": False,
        },
    },
    {
        "key": "handoff",
        "name": "Handoff to staff",
        "description": (
            "The customer asks for a person, complains, or needs something the assistant cannot "
            "do, such as a refund or a change to an existing booking."
        ),
        "is_handoff": True,
    },
]


@dataclass(frozen=True)
class AdminLogin:
    username: str
    password: str | None  # only when this run created or reset the login


@dataclass(frozen=True)
class DemoBusiness:
    business: Business
    api_key: str | None  # only when this run created the business


def demo_admin_ensure() -> AdminLogin:
    """The first superuser; when there is none, `admin` with a random password."""
    User = get_user_model()
    existing = User.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        return AdminLogin(username=existing.get_username(), password=None)
    password = secrets.token_urlsafe(15)
    user: AbstractBaseUser = User.objects.filter(username=ADMIN_USERNAME).first() or User(
        username=ADMIN_USERNAME, email="admin@example.com"
    )
    user.is_superuser = user.is_staff = user.is_active = True
    user.set_password(password)
    user.save()
    return AdminLogin(username=user.get_username(), password=password)


@transaction.atomic
def demo_business_ensure() -> DemoBusiness:
    """The demo business (slug `demo`), created once with its stages and an API channel."""
    business = Business.objects.filter(slug=DEMO_SLUG).first()
    if business is not None:
        return DemoBusiness(business=business, api_key=None)
    business, raw_key = business_create(
        name=DEMO_NAME, owner_email=DEMO_OWNER_EMAIL, config=DEMO_CONFIG, slug=DEMO_SLUG
    )
    Agent.objects.filter(business=business, is_default=True).update(
        name="Sunny", persona=DEMO_PERSONA, instructions=DEMO_INSTRUCTIONS
    )
    # business_create gave it the generic initial stage; the demo brings its own set.
    for stage in Stage.objects.filter(business=business):
        stage_delete(stage=stage)
    for order, stage in enumerate(DEMO_STAGES):
        stage_create(business=business, order=order, **stage)
    channel_account_create(business=business, kind=ChannelKind.API, name="Demo API channel")
    return DemoBusiness(business=business, api_key=raw_key)
