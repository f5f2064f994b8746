"""manage.py prune_metrics: the retention of the metric history through the command."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from models_app.models import MetricPoint
from registry_site.models import AuditEvent

pytestmark = pytest.mark.django_db


def prune(*args) -> str:
    out = StringIO()
    call_command("prune_metrics", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def aged(make_version):
    version = make_version(data=None)
    now = timezone.now()
    day = (now - timedelta(days=120)).replace(hour=0, minute=0, second=0, microsecond=0)
    MetricPoint.objects.bulk_create(
        [MetricPoint(version=version, name="auc", value=v, timestamp=day + timedelta(hours=v)) for v in (1.0, 3.0)]
        + [MetricPoint(version=version, name="auc", value=0.5, timestamp=now - timedelta(days=10))]
    )
    return version


def test_prunes_what_is_older_than_the_duration(aged):
    assert prune("--older-than", "200d") == "Deleted 0 points; kept 0 daily points.\n"
    assert prune("--older-than", "90d") == "Deleted 2 points; kept 0 daily points.\n"
    assert list(MetricPoint.objects.values_list("value", flat=True)) == [0.5]
    event = AuditEvent.objects.filter(action="prune_metrics").order_by("pk").last()
    assert event.via == "command" and event.changes == {"deleted": 2, "kept_daily": 0}


def test_keep_daily_leaves_one_average_per_day(aged):
    assert prune("--older-than", "12w", "--keep-daily") == "Deleted 2 points; kept 1 daily points.\n"
    daily = MetricPoint.objects.get(source="eval.daily")
    assert (daily.value, daily.step, daily.timestamp.hour) == (2.0, 2, 0)


@pytest.mark.parametrize("duration", ["90", "0d", "-5d", "ninety", "90y", "1.5d"])
def test_a_bad_duration_is_refused(aged, duration):
    with pytest.raises(CommandError, match="not a duration|positive"):
        prune(f"--older-than={duration}")
    assert MetricPoint.objects.count() == 3
