from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from registry_site.models import IdempotencyKey


def record(key: str, *, expires_in: timedelta) -> IdempotencyKey:
    return IdempotencyKey.objects.create(
        scope=key * 64,
        owner="anonymous",
        method="POST",
        path="/models",
        key=key,
        request_digest="0" * 64,
        status_code=201,
        content_type="application/json",
        body=b"{}",
        expires_at=timezone.now() + expires_in,
    )


def purge(*args) -> str:
    out = StringIO()
    call_command("purge_idempotency_keys", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_deletes_the_expired_answers_and_keeps_the_others():
    record("a", expires_in=-timedelta(hours=1))
    record("b", expires_in=-timedelta(seconds=1))
    record("c", expires_in=timedelta(hours=23))

    assert "2 expired idempotency keys would be deleted (dry run)" in purge("--dry-run")
    assert IdempotencyKey.objects.count() == 3
    assert "Deleted 2 expired idempotency keys." in purge()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["c"]
    assert "Deleted 0 expired" in purge()
