"""A missing FIELD_ENCRYPTION_KEYS stops a process that would need it (in-process checks;
the subprocess ones, production settings, are in test_deploy_check.py)."""

from __future__ import annotations

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from channels_app.models import ChannelAccount
from icmp.startup import require_settings

pytestmark = pytest.mark.django_db


def _deploy_errors() -> list[str]:
    return [m.id for m in checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])]


@override_settings(FIELD_ENCRYPTION_KEYS=[], DEBUG=True)
def test_a_development_process_with_stored_secrets_and_no_key_refuses_to_start(alice):
    with pytest.raises(ImproperlyConfigured, match="channel accounts hold secrets"):
        require_settings()
    assert "icmp.E002" in _deploy_errors()


@override_settings(FIELD_ENCRYPTION_KEYS=[], DEBUG=True)
def test_a_development_process_without_secrets_starts_without_a_key(alice):
    ChannelAccount.objects.update(access_token="", app_secret="", verify_token="")

    require_settings()
    assert "icmp.E002" not in _deploy_errors()


@override_settings(FIELD_ENCRYPTION_KEYS=[])
def test_a_celery_worker_refuses_to_start_without_a_key():
    from icmp.celery import _require_settings

    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS must be set when DEBUG is off"):
        _require_settings()


def test_the_test_settings_pass_the_key_checks():
    require_settings()
    assert not {"icmp.E002", "icmp.E003"} & set(_deploy_errors())
