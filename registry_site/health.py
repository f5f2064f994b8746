"""GET /health: is the registry able to serve? Checks the database and the artifact storage."""

from __future__ import annotations

import logging
from typing import cast

from django.core.files.storage import default_storage
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

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
    checks = {}
    healthy = True
    for name, check in (("database", _check_database), ("storage", _check_storage)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure is the answer, not an error of this view
            logger.warning("health check %s failed: %s", name, exc)
            checks[name] = f"error: {exc.__class__.__name__}: {exc}"
            healthy = False
    body = {"status": "healthy" if healthy else "unhealthy", **checks}
    return Response(body, status=200 if healthy else 503)
