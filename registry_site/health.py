"""For orchestrators and monitoring: `GET /health` (the seed's check: database and storage), `GET /ready`
(may this process take traffic: database and storage reachable, every migration applied) and `GET /metrics`
(Prometheus; `registry_site/observability.py`)."""

from __future__ import annotations

import logging
from typing import cast

from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from registry_site.observability import exposition, metrics_open_without_token
from registry_site.storage import ArtifactStorage

logger = logging.getLogger(__name__)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_storage() -> None:
    storage = cast(ArtifactStorage, default_storage)
    storage.check_reachable()  # registry_site.storage: a writable folder, a reachable bucket


HealthSerializer = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(["healthy", "unhealthy"]),
        "database": serializers.CharField(help_text='"ok", or "error: ..." saying what failed'),
        "storage": serializers.CharField(help_text='"ok", or "error: ..." saying what failed'),
    },
)


@extend_schema(responses={200: HealthSerializer, 503: HealthSerializer})
@api_view(["GET", "HEAD"])  # load balancers and uptime checks often ask with HEAD
@permission_classes([AllowAny])
def health(request: Request) -> Response:
    ok, checks = _run((("database", _check_database), ("storage", _check_storage)))
    return Response({"status": "healthy" if ok else "unhealthy", **checks}, status=200 if ok else 503)


def _run(checks) -> tuple[bool, dict[str, str]]:
    """Each check in turn: "ok", or "error: ..." saying what failed."""
    results: dict[str, str] = {}
    for name, check in checks:
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure is the answer, not an error of this view
            logger.warning("%s check failed: %s", name, exc)
            results[name] = f"error: {exc.__class__.__name__}: {exc}"
    return all(value == "ok" for value in results.values()), results


_migrations_applied = False  # once true, stays true for this process


def _check_migrations() -> None:
    global _migrations_applied
    if _migrations_applied:
        return
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in pending[:5])
        raise RuntimeError(f"{len(pending)} migration(s) not applied ({names}); run manage.py migrate")
    _migrations_applied = True


ReadySerializer = inline_serializer(
    "Ready",
    {
        "status": serializers.ChoiceField(["ready", "not ready"]),
        "database": serializers.CharField(),
        "storage": serializers.CharField(),
        "migrations": serializers.CharField(),
    },
)


@extend_schema(responses={200: ReadySerializer, 503: ReadySerializer})
@api_view(["GET"])
@permission_classes([AllowAny])
def ready(request: Request) -> Response:
    """Readiness, for a load balancer or Kubernetes: 503 until this process can serve every request."""
    ok, checks = _run((("database", _check_database), ("storage", _check_storage), ("migrations", _check_migrations)))
    return Response({"status": "ready" if ok else "not ready", **checks}, status=200 if ok else 503)


class MetricsPermission(BasePermission):
    """Open in local mode (or with REGISTRY_METRICS_PUBLIC=true); otherwise any valid API token."""

    def has_permission(self, request, view) -> bool:
        return metrics_open_without_token() or IsAuthenticated().has_permission(request, view)


@extend_schema(responses={(200, "text/plain"): str}, description="Prometheus metrics (text exposition format).")
@api_view(["GET"])
@permission_classes([MetricsPermission])
def metrics(request: Request) -> HttpResponse:
    return HttpResponse(exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")
