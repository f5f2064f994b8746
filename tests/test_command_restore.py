"""manage.py "restore": only into an empty registry unless told, and all or nothing."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from tests import test_command_backup
from tests.test_command_backup import listings, run, wipe

filled = test_command_backup.filled  # the same registry, made through the API


@pytest.mark.django_db
def test_restore_refuses_a_registry_that_is_not_empty(filled, tmp_path):
    run("backup", str(tmp_path / "backup"))
    with pytest.raises(CommandError, match="not empty .*--replace"):
        run("restore", str(tmp_path / "backup"))


@pytest.mark.django_db
def test_restore_with_replace_swaps_the_registry(filled, make_model, api, tmp_path):
    run("backup", str(tmp_path / "backup"))
    before = listings(api)
    make_model(name="added-later")
    run("restore", str(tmp_path / "backup"), "--replace")
    assert listings(api) == before


@pytest.mark.django_db
def test_a_damaged_backup_restores_nothing(filled, storage_dir, tmp_path):
    target = tmp_path / "backup"
    run("backup", str(target))
    wipe(storage_dir)
    [copy] = [p for p in (target / "files").rglob("*") if p.is_file() and p.read_bytes() == b"two" * 1000]
    copy.write_bytes(b"t" * 3000)
    with pytest.raises(CommandError, match="damaged"):
        run("restore", str(target))
    assert [p for p in storage_dir.rglob("*") if p.is_file()] == []  # no file without its row
    assert APIClient().get("/models").json()["results"] == []


@pytest.mark.django_db
def test_restore_without_a_finished_snapshot_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="No finished backup snapshot"):
        run("restore", str(tmp_path / "empty"))
    with pytest.raises(CommandError, match="no bucket"):
        run("backup", "s3://")


@pytest.mark.django_db
def test_restore_counts_every_table_of_the_registry_not_only_the_first_six(filled, storage_dir, tmp_path):
    """A registry holding only a webhook subscription is not empty (restoring over it would mix two
    registries), and the reports name the newer tables when they hold rows."""
    from registry_site import webhooks

    out = run("backup", str(tmp_path / "backup"))
    assert "registry_webhook_subscriptions" not in out  # an empty table beyond the core six is not named
    wipe(storage_dir)
    webhooks.create_subscription(url="https://hooks.example.com/in", events=["*"])
    with pytest.raises(CommandError, match="not empty .*1 in registry_webhook_subscriptions"):
        run("restore", str(tmp_path / "backup"))
    out = run("restore", str(tmp_path / "backup"), "--replace")
    assert "registry_webhook_subscriptions" not in out  # the snapshot's registry had none: --replace removed it
    from registry_site.models import WebhookSubscription

    assert not WebhookSubscription.objects.exists()
