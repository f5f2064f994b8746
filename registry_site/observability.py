"""What an operator's monitoring sees: a request id on every request, one JSON log line per request, and
Prometheus metrics (`GET /metrics`).

The request id comes from the client's `X-Request-ID` when it is a sane token, otherwise it is made here;
it is returned in the response's `X-Request-ID`, written in the request's log line and in every audit
event the request causes (`registry_site/audit.py` reads it from the request).

Metrics are kept with prometheus-client. Under gunicorn each worker is its own process, so
`registry_site/gunicorn.conf.py` points `PROMETHEUS_MULTIPROC_DIR` at a fresh folder before the workers
start and the scrape adds up every worker's numbers; without it (tests, `runserver`) they are per process.
What the database knows (models, versions, stored files and bytes, deployments) is counted at scrape time.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from registry_site.audit import client_address

request_log = logging.getLogger("registry.request")

# A client's id is kept when it is a plain token of sane length (it ends up in logs and the audit table).
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,64}")

# The routes that receive and serve model files (url names in registry_site/urls.py).
UPLOAD_ROUTES = frozenset({"version-list", "version-file"})
DOWNLOAD_ROUTES = frozenset({"version-file", "version-default-file"})

REQUEST_SECONDS = Histogram(
    "registry_http_request_duration_seconds",
    "Time from the request reaching Django to the last byte of the response handed to the server.",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
UPLOAD_BYTES = Counter("registry_upload_bytes", "Bytes of model files received by accepted uploads.")
DOWNLOAD_BYTES = Counter("registry_download_bytes", "Bytes of model files served (whole files and ranges).")
THROTTLED = Counter("registry_throttled_requests", "Requests refused with 429 by a throttle.", ["route"])
AUTH_FAILURES = Counter("registry_auth_failures", "Requests refused with 401 (no, bad or expired credentials).")


def request_id_of(request: HttpRequest) -> str:
    return getattr(request, "request_id", "")


class ObservabilityMiddleware:
    """First in the chain: names the request, times it to its last byte, counts it and logs it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        offered = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = offered if _CLIENT_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        if response.streaming:
            # A file is sent after this returns: count and log when the server closes the response.
            close = response.close
            observed: list[bool] = []

            def close_then_observe() -> None:
                close()
                if not observed:  # closed once by the server, and maybe again by a wrapper
                    observed.append(True)
                    _observe(request, response, started)

            response.close = close_then_observe  # type: ignore[method-assign]
        else:
            _observe(request, response, started)
        return response


def _observe(request: HttpRequest, response: HttpResponse, started: float) -> None:
    seconds = time.perf_counter() - started
    match = getattr(request, "resolver_match", None)
    route = (match.view_name if match is not None else "") or "unmatched"
    status = response.status_code
    REQUEST_SECONDS.labels(request.method, route, str(status)).observe(seconds)
    bytes_in = _int(request.META.get("CONTENT_LENGTH"))
    bytes_out = _int(response.get("Content-Length"))
    if 200 <= status < 300:
        if route in UPLOAD_ROUTES and request.method in ("POST", "PUT"):
            UPLOAD_BYTES.inc(bytes_in)
        elif route in DOWNLOAD_ROUTES and request.method == "GET":
            DOWNLOAD_BYTES.inc(bytes_out)
    elif status == 429:
        THROTTLED.labels(route).inc()
    elif status == 401:
        AUTH_FAILURES.inc()
    user = getattr(request, "user", None)
    request_log.info(
        "%s %s %s %.1fms",
        request.method,
        request.get_full_path(),
        status,
        seconds * 1000,
        extra={
            "request_id": request_id_of(request),
            "method": request.method,
            "path": request.get_full_path(),  # with its query string (no secrets travel there)
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "user": user.get_username() if user is not None and user.is_authenticated else "anonymous",
            "client": client_address(request),
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
        },
    )


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


class RegistryCollector(Collector):
    """The registry's contents, counted in the database when Prometheus scrapes."""

    def collect(self):
        from django.apps import apps  # the core imports no app: look the tables up by name

        registered_model = apps.get_model("models_app", "RegisteredModel")
        model_version = apps.get_model("models_app", "ModelVersion")
        artifact = apps.get_model("models_app", "Artifact")
        deployment = apps.get_model("deployments_app", "Deployment")

        yield GaugeMetricFamily("registry_models", "Registered models.", value=registered_model.objects.count())
        yield GaugeMetricFamily("registry_versions", "Model versions.", value=model_version.objects.count())
        files = artifact.objects.aggregate(count=Count("pk"), size=Sum("size"))
        yield GaugeMetricFamily("registry_stored_files", "Distinct stored files (one per sha256).", files["count"])
        yield GaugeMetricFamily("registry_stored_bytes", "Bytes in stored files.", value=files["size"] or 0)
        by_status = GaugeMetricFamily(
            "registry_deployments",
            "Deployment records by status (rolled_back ones are the rollbacks).",
            labels=["status"],
        )
        counts = dict(deployment.objects.values_list("deployment_status").annotate(n=Count("pk")).order_by())
        for status in deployment._meta.get_field("deployment_status").choices:
            by_status.add_metric([status[0]], counts.get(status[0], 0))
        yield by_status


def exposition() -> bytes:
    """The text Prometheus scrapes: every gunicorn worker's request metrics, and the registry's contents."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    output = generate_latest(registry)
    contents = CollectorRegistry()
    contents.register(RegistryCollector())
    return output + generate_latest(contents)


def metrics_open_without_token() -> bool:
    return bool(settings.LOCAL_MODE or settings.REGISTRY_METRICS_PUBLIC)
