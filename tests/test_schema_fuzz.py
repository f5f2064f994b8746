"""The OpenAPI schema and the server cannot drift apart: schemathesis generates requests from
/openapi.json, valid and invalid, for every operation, sends them to the registry (the WSGI app in this
process, no network) and runs every one of its checks on each answer: no 5xx, every status and body
documented, invalid input refused, valid input accepted, auth enforced where the schema says so...

Bounded: a fixed seed (derandomize) and a modest number of examples per operation, in local mode and in
production mode (with a valid admin token), on whichever database the suite runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import schemathesis
from django.core import signals
from django.core.exceptions import ValidationError
from django.core.handlers.wsgi import WSGIHandler
from django.core.validators import URLValidator
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.config._checks import (
    NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES,
    POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES,
)
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from models_app import metric_history
from registry_site.authentication import issue_token
from registry_site.json_values import has_unstorable_text
from registry_site.validators import SEED_METRIC_NAMES, is_metric_name
from tests.conftest import production_mode, user_with_role

EXAMPLES_PER_OPERATION = 10

pytestmark = pytest.mark.slow


@pytest.fixture(params=["local", "production"])
def mode(request, settings, world) -> str:
    """A registry with a little of everything (tests.conftest.world) in either mode. Failed tokens are
    part of what is generated: their lockout would end the run with 429s, so it is out of reach here."""
    settings.REGISTRY_AUTH_FAILURES_PER_MINUTE = 1_000_000
    if request.param == "production":
        production_mode(settings)
    return request.param


@pytest.fixture
def keep_the_test_connection():
    """The test's transaction lives on its database connection: a real WSGI handler closes a connection
    in a transaction at the end of each request (Django's test client does not; on SQLite's in-memory
    database closing is a no-op anyway)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(mode, keep_the_test_connection):
    # Valid data may still be a documented 422: hypothesis repeats an Idempotency-Key value (the shortest
    # one, most often) with another valid body, which is exactly what the key forbids
    # (registry_site.idempotency). The registry answers 422 for nothing else.
    accepted = [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "422"]
    # A batch of metric points over its maxItems is refused with 413 (models_app.metric_history), as the
    # issue asks: a refusal, which schemathesis's list of rejections leaves out.
    rejected = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
    config = {
        "seed": 7,
        "checks": {
            "positive_data_acceptance": {"expected-statuses": accepted},
            "negative_data_rejection": {"expected-statuses": rejected},
        },
    }
    if mode == "production":
        _, token = issue_token(user=user_with_role("fuzzer", "admin"), name="schemathesis")
        config["auth"] = {"openapi": {"bearerToken": {"bearer": token}}}
    # A new handler: its middleware is built under this test's settings.
    return schemathesis.openapi.from_wsgi(
        "/openapi.json", WSGIHandler(), config=schemathesis.config.SchemathesisConfig.from_dict(config)
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schemathesis.hook
def filter_body(context, body) -> bool:
    """Not the JSON bodies with a NUL or a lone UTF-16 surrogate in them (at any depth of training_config,
    say): a database cannot store either and the registry refuses them with a 400 naming the field, but
    OpenAPI 3.0 has no way to say "no such character at any depth" of a free-form object. Nor those whose
    metrics or tags are named against the registry's rule (registry_site.validators.METRIC_NAME_PATTERN,
    the seed's five): OpenAPI 3.0 has no rule on an object's keys either (propertyNames came in 3.1)."""
    return not has_unstorable_text(body) and not _misnamed_metadata(body) and not _point_in_the_future(body)


def _versions_named_twice(query) -> bool:
    """A comparison that names a version twice (`versions=v1,v1`): the registry refuses it with a 400
    naming `versions` (models_app.comparison), which a pattern for a comma-separated list cannot say."""
    versions = query.get("versions") if isinstance(query, dict) else None
    return isinstance(versions, str) and len(versions.split(",")) != len(set(versions.split(",")))


def _point_in_the_future(body) -> bool:
    """A metric point timestamped more than 5 minutes ahead (models_app.metric_history refuses it, naming
    the field): a schema cannot say "no later than now"."""
    points = body.get("points") if isinstance(body, dict) else None
    if not isinstance(points, list):
        return False
    horizon = timezone.now() + metric_history.MAX_FUTURE_SKEW
    for point in points:
        raw = point.get("timestamp") if isinstance(point, dict) else None
        try:
            moment = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            continue
        if moment is not None and (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) > horizon:
            return True
    return False


def _invalid_webhook_url(body) -> bool:
    """A webhook subscription's URL that Django's URL rule refuses (a host name over 253 characters, say):
    the schema's `format: uri` cannot say what a valid http(s) URL is."""
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):  # POST or PATCH /webhooks
        return False
    try:
        URLValidator(schemes=["http", "https"])(body["url"])
    except ValidationError:
        return True
    return False


def _misnamed_metadata(body) -> bool:
    if not isinstance(body, dict):
        return False
    names = [*_keys(body.get("metrics")), *_keys(body.get("tags")), *_keys(body.get("metric_directions"))]
    return any(not is_metric_name(name) for name in names) or any(
        name in SEED_METRIC_NAMES for name in _keys(body.get("metrics"))
    )


def _keys(value) -> list:
    return list(value) if isinstance(value, dict) else []


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_behaves_as_its_schema_says(case):
    excluded = []
    if case.media_type == "multipart/form-data":
        # A form carries text, and the schema's JSON types do not survive the trip: a number where a
        # string is wanted (version=0) arrives as the valid version "0", JSON null arrives as the text
        # "null", and an empty field means "not given" (README). Whether a form's data is valid cannot be
        # judged from the schema; the same operations' JSON bodies are held to both checks.
        excluded += [negative_data_rejection, positive_data_acceptance]
    elif _versions_named_twice(case.query):
        # Refused with a documented 400 naming `versions`; the coverage phase's examples bypass the hooks.
        excluded += [positive_data_acceptance]
    elif _invalid_webhook_url(case.body):
        # Refused with a documented 400 naming `url`, which the schema's `format: uri` cannot foresee
        # (the coverage phase's explicit examples bypass filter_body).
        excluded += [positive_data_acceptance]
    case.call_and_validate(excluded_checks=excluded)
