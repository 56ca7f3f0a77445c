"""Operator commands: seed_templates, create_business, create_api_key, add_member, bootstrap_demo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from businesses.models import APIKey, Business, Membership
from channels_app.models import ChannelAccount, ChannelKind
from icmp.jsonschemas import schema_errors
from stages.models import Stage
from templates_app.defaults import DEFAULT_TEMPLATES
from templates_app.models import PromptTemplate, TemplateKind

User = get_user_model()
AUTH_CHECK = "/api/v1/auth/check/"


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args: str) -> str:
    """Run a command that must refuse; return its error message."""
    with pytest.raises(CommandError) as excinfo:
        run(*args)
    return str(excinfo.value)


def printed(label: str, output: str) -> str:
    """The value printed on its own `<label>: <value>` line."""
    matches = re.findall(rf"^{re.escape(label)}: (\S+)$", output, re.MULTILINE)
    assert len(matches) == 1, output
    return matches[0]


def assert_key_authenticates(raw_key: str, business: Business) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    response = client.get(AUTH_CHECK)
    assert response.status_code == 200, response.content
    assert response.json()["business"] == str(business.pk)


def row_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Business, User, Membership, APIKey, Stage, PromptTemplate, ChannelAccount)
    }


# --- seed_templates ------------------------------------------------------------


@pytest.mark.django_db
def test_seed_templates_creates_the_three_platform_defaults_and_says_so():
    out, _ = run("seed_templates")

    assert out.count("created: ") == 3
    for kind in TemplateKind.values:
        assert f"created: {kind} " in out
        template = PromptTemplate.objects.get(business=None, kind=kind)
        assert template.is_default
        assert template.content == DEFAULT_TEMPLATES[kind].content


@pytest.mark.django_db
def test_seed_templates_twice_leaves_the_same_rows():
    run("seed_templates")
    before = list(PromptTemplate.objects.order_by("id").values("id", "kind", "version", "content"))

    out, _ = run("seed_templates")

    assert out.count("kept: ") == 3
    assert "created: " not in out
    assert list(PromptTemplate.objects.order_by("id").values("id", "kind", "version", "content")) == before


@pytest.mark.django_db
def test_seed_templates_force_restores_an_edited_default_with_a_new_version():
    run("seed_templates")
    PromptTemplate.objects.filter(business=None, kind=TemplateKind.DATA_EXTRACTION).update(
        content="{{ schema }}"
    )

    kept, _ = run("seed_templates")
    forced, _ = run("seed_templates", "--force")

    assert "kept: data_extraction" in kept
    assert re.search(r"^updated: data_extraction .* v2$", forced, re.MULTILINE), forced
    template = PromptTemplate.objects.get(business=None, kind=TemplateKind.DATA_EXTRACTION)
    assert (template.content, template.version) == (DEFAULT_TEMPLATES[template.kind].content, 2)
    assert PromptTemplate.objects.filter(business=None).count() == 3


def test_seed_templates_gives_a_stageless_business_its_default_stage(alice):
    Stage.objects.filter(business=alice.business).delete()

    out, _ = run("seed_templates")
    again, _ = run("seed_templates")

    assert f'created: default stage for "{alice.business.name}"' in out
    assert Stage.objects.get(business=alice.business).is_initial
    assert "Every business has stages." in again


def test_seed_templates_refuses_an_unknown_option():
    assert "unrecognized arguments: --everything" in fails("seed_templates", "--everything")


# --- create_business -----------------------------------------------------------


@pytest.mark.django_db
def test_create_business_prints_the_id_and_a_working_api_key_once():
    out, _ = run("create_business", "Acme Repairs", "--owner-email", "Owner@Acme.example")

    business = Business.objects.get(pk=printed("Business id", out))
    assert (business.name, business.slug, business.owner.email) == (
        "Acme Repairs",
        "acme-repairs",
        "owner@acme.example",
    )
    raw_key = printed("API key", out)
    assert_key_authenticates(raw_key, business)
    assert out.count(raw_key) == 1
    assert Stage.objects.get(business=business).is_initial
    # A new owner has no password: the output says how to give them a login.
    assert "manage.py add_member acme-repairs owner@acme.example --role owner" in out


@pytest.mark.django_db
def test_create_business_takes_a_slug_and_a_config_file(tmp_path):
    config = {"description": "We fix things.", "opening_hours": {"mon": "09:00-17:00"}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))

    out, _ = run(
        "create_business",
        "Acme",
        "--owner-email",
        "o@acme.example",
        "--slug",
        "acme-pt",
        "--config-file",
        str(path),
    )

    business = Business.objects.get(slug="acme-pt")
    assert business.config == config
    assert str(business.pk) in out


def test_create_business_for_an_existing_owner_keeps_their_login(alice):
    out, _ = run("create_business", "Alice's Second Shop", "--owner-email", "alice@example.com")

    business = Business.objects.get(pk=printed("Business id", out))
    assert business.owner == alice.owner
    assert "add_member" not in out


def _bad_create_business_args(tmp_path: Path) -> list[tuple[list[str], str]]:
    missing = tmp_path / "missing.json"
    broken = tmp_path / "broken.json"
    broken.write_text('{"description": ')
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"colour": "blue", "opening_hours": {"mon": "all day"}}))
    return [
        (["Acme"], "the following arguments are required: --owner-email"),
        ([], "the following arguments are required: name"),
        (["   ", "--owner-email", "o@acme.example"], "name must not be empty"),
        (["Acme", "--owner-email", "not-an-email"], "--owner-email must be an email address"),
        (
            ["Acme", "--owner-email", "o@acme.example", "--slug", "Not a slug!"],
            "--slug 'Not a slug!' may contain",
        ),
        (["Acme", "--owner-email", "o@acme.example", "--slug", "x" * 81], "at most 80 characters"),
        (
            ["Acme", "--owner-email", "o@acme.example", "--slug", "alices-bakery"],
            "The slug 'alices-bakery' is taken",
        ),
        (
            ["Acme", "--owner-email", "o@acme.example", "--config-file", str(missing)],
            "Cannot read the config file",
        ),
        (
            ["Acme", "--owner-email", "o@acme.example", "--config-file", str(tmp_path)],
            "Cannot read the config file",
        ),
        (
            ["Acme", "--owner-email", "o@acme.example", "--config-file", str(broken)],
            "is not valid JSON (line 1",
        ),
        (["Acme", "--owner-email", "o@acme.example", "--config-file", str(array)], "must hold a JSON object"),
        (
            ["Acme", "--owner-email", "o@acme.example", "--config-file", str(invalid)],
            "does not match its schema",
        ),
    ]


def test_create_business_refuses_bad_arguments_and_writes_nothing(alice, tmp_path):
    assert alice.business.slug == "alices-bakery"
    before = row_counts()

    for args, message in _bad_create_business_args(tmp_path):
        error = fails("create_business", *args)
        assert message in error, (args, error)

    assert row_counts() == before


def test_create_business_names_each_config_problem(db, tmp_path):
    path = tmp_path / "invalid.json"
    path.write_text(json.dumps({"opening_hours": {"mon": "all day"}}))

    error = fails("create_business", "Acme", "--owner-email", "o@acme.example", "--config-file", str(path))

    assert "opening_hours/mon" in error


# --- create_api_key ------------------------------------------------------------


def test_create_api_key_by_slug_prints_a_working_key_once(alice):
    out, _ = run("create_api_key", "alices-bakery", "--name", "Zapier")

    raw_key = printed("API key", out)
    assert_key_authenticates(raw_key, alice.business)
    key = APIKey.objects.get(pk=printed("Key id", out))
    assert (key.business, key.name, key.expires_at) == (alice.business, "Zapier", None)
    assert "Expires: never" in out
    assert key.hashed_key not in out


def test_create_api_key_by_id_with_an_expiry_in_days(alice):
    out, _ = run("create_api_key", str(alice.business.pk), "--expires-in-days", "30")

    key = APIKey.objects.get(pk=printed("Key id", out))
    assert key.business == alice.business
    assert abs(key.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert_key_authenticates(printed("API key", out), alice.business)


def test_create_api_key_with_an_expiry_date(alice):
    out, _ = run("create_api_key", "alices-bakery", "--expires-at", "2099-12-31")

    key = APIKey.objects.get(pk=printed("Key id", out))
    assert key.expires_at.isoformat() == "2099-12-31T00:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: business"),
        (["no-such-business"], "No business with slug or id 'no-such-business'"),
        (["0190f1a4-0000-7000-8000-000000000000"], "No business with slug or id"),
        (["alices-bakery", "--name", "  "], "--name must not be empty"),
        (["alices-bakery", "--expires-in-days", "0"], "--expires-in-days must be between 1 and 3650, got 0"),
        (["alices-bakery", "--expires-in-days", "-3"], "must be between 1 and 3650"),
        (["alices-bakery", "--expires-in-days", "99999"], "must be between 1 and 3650"),
        (
            ["alices-bakery", "--expires-in-days", "soon"],
            "argument --expires-in-days: invalid int value: 'soon'",
        ),
        (["alices-bakery", "--expires-at", "next tuesday"], "--expires-at 'next tuesday' is not a date"),
        (["alices-bakery", "--expires-at", "2026-02-30"], "is not a date"),
        (["alices-bakery", "--expires-at", "2001-01-01"], "is in the past"),
        (
            ["alices-bakery", "--expires-in-days", "3", "--expires-at", "2099-01-01"],
            "not allowed with argument",
        ),
    ],
)
def test_create_api_key_refuses_bad_arguments_and_writes_nothing(alice, args, message):
    before = row_counts()

    error = fails("create_api_key", *args)

    assert message in error
    assert row_counts() == before


# --- add_member ----------------------------------------------------------------


def test_add_member_gives_a_new_person_a_login_with_a_generated_password(alice):
    out, _ = run("add_member", "alices-bakery", "Eve@Example.com", "--role", "editor")

    password = printed("Password", out)
    assert len(password) >= 20
    assert printed("Login at /admin/ with username", out) == "eve@example.com"
    membership = Membership.objects.get(business=alice.business, user__email="eve@example.com")
    assert membership.role == "editor"
    assert membership.user.is_staff
    assert Client().login(username="eve@example.com", password=password)


def test_add_member_with_a_password_sets_it_and_does_not_print_it(alice):
    password = "correct-horse-battery-staple-42"

    out, err = run(
        "add_member", str(alice.business.pk), "ed@example.com", "--role", "viewer", "--password", password
    )

    assert password not in out + err
    assert "Password:" not in out
    assert err == ""
    assert Client().login(username="ed@example.com", password=password)
    assert Membership.objects.get(user__email="ed@example.com").role == "viewer"


def test_add_member_warns_about_a_weak_password_but_sets_it(alice):
    _, err = run("add_member", "alices-bakery", "weak@example.com", "--role", "viewer", "--password", "abc")

    assert "Weak password" in err
    assert Client().login(username="weak@example.com", password="abc")


def test_add_member_keeps_an_existing_users_password_and_changes_the_role(alice, charlie):
    run("add_member", "alices-bakery", "charlie@example.com", "--role", "viewer")

    out, _ = run("add_member", "alices-bakery", "charlie@example.com", "--role", "admin")

    assert "Password:" not in out
    assert "The existing password was kept." in out
    assert Membership.objects.get(business=alice.business, user=charlie).role == "admin"
    assert Client().login(username="charlie@example.com", password="pw-charlie")


def test_add_member_gives_an_owner_without_a_password_a_login(db):
    out, _ = run("create_business", "Acme", "--owner-email", "o@acme.example")
    business = Business.objects.get(pk=printed("Business id", out))

    out, _ = run("add_member", business.slug, "o@acme.example", "--role", "owner")

    assert Client().login(username="o@acme.example", password=printed("Password", out))
    assert Membership.objects.filter(business=business).count() == 1


def test_add_member_never_leaves_a_business_without_an_owner(alice):
    before = row_counts()

    error = fails("add_member", "alices-bakery", "alice@example.com", "--role", "viewer")

    assert "at least one owner" in error
    assert row_counts() == before
    assert Membership.objects.get(business=alice.business, user=alice.owner).role == "owner"


def test_add_member_hands_a_business_over_once_another_owner_exists(alice):
    run("add_member", "alices-bakery", "olga@example.com", "--role", "owner")

    run("add_member", "alices-bakery", "alice@example.com", "--role", "admin")

    assert Membership.objects.get(business=alice.business, user=alice.owner).role == "admin"
    # The business's owner field follows the owner role.
    assert Business.objects.get(pk=alice.business.pk).owner.email == "olga@example.com"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "x@example.com", "--role", "editor"], "No business with slug or id 'nope'"),
        (["alices-bakery", "not-an-email", "--role", "editor"], "email must be an email address"),
        (["alices-bakery", "x@", "--role", "editor"], "email must be an email address"),
        (["alices-bakery", "x@example.com", "--role", "boss"], "argument --role: invalid choice: 'boss'"),
        (["alices-bakery", "x@example.com"], "the following arguments are required: --role"),
        (["alices-bakery", "--role", "editor"], "the following arguments are required: email"),
        (
            ["alices-bakery", "x@example.com", "--role", "editor", "--password", " "],
            "--password must not be empty",
        ),
    ],
)
def test_add_member_refuses_bad_arguments_and_writes_nothing(alice, args, message):
    before = row_counts()

    error = fails("add_member", *args)

    assert message in error
    assert row_counts() == before


# --- bootstrap_demo ------------------------------------------------------------


@pytest.mark.django_db
def test_bootstrap_demo_creates_an_admin_and_a_working_demo_business():
    out, _ = run("bootstrap_demo")

    username, password = printed("Admin username", out), printed("Admin password", out)
    assert username == "admin"
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert Client().login(username="admin", password=password)

    business = Business.objects.get(slug="demo")
    assert (business.name, business.owner.email) == ("Demo Business", "demo@example.com")
    assert_key_authenticates(printed("API key", out), business)
    stages = {stage.key: stage for stage in Stage.objects.filter(business=business)}
    assert list(stages) == ["greeting", "qualification", "booking", "handoff"]
    assert [key for key, stage in stages.items() if stage.is_initial] == ["greeting"]
    assert [key for key, stage in stages.items() if stage.is_handoff] == ["handoff"]
    assert set(stages["qualification"].data_schema["required"]) == {"name", "email", "need"}
    assert set(stages["booking"].data_schema["required"]) == {"date", "time"}
    for stage in stages.values():
        assert stage.description
        assert schema_errors(stage.data_schema) == []
    assert ChannelAccount.objects.filter(business=business, kind=ChannelKind.API, is_active=True).count() == 1


@pytest.mark.django_db
def test_bootstrap_demo_a_second_time_creates_nothing_and_says_how_to_get_credentials():
    run("bootstrap_demo")
    before = row_counts()

    out, _ = run("bootstrap_demo")

    assert row_counts() == before
    assert "manage.py changepassword admin" in out
    assert "manage.py create_api_key demo" in out
    assert not re.search(r"^(Admin password|API key):", out, re.MULTILINE)


@pytest.mark.django_db
def test_bootstrap_demo_leaves_an_existing_superuser_alone():
    User.objects.create_superuser("root", "root@example.com", "pw-root")

    out, _ = run("bootstrap_demo")

    assert not User.objects.filter(username="admin").exists()
    assert "manage.py changepassword root" in out
    assert Business.objects.filter(slug="demo").exists()


# --- the real command line -----------------------------------------------------


def test_a_bad_argument_on_the_command_line_is_one_clear_line_not_a_traceback(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "icmp.settings_test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "add_member", "acme", "x@example.com", "--role", "boss"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "invalid choice: 'boss'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
