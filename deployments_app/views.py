"""REST endpoints for deployments: the seed's POST /deploy, the deployment history and rollback."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from deployments_app import selectors, services
from deployments_app.filters import DeploymentFilter
from deployments_app.models import Deployment
from deployments_app.serializers import (
    DeploymentSerializer,
    DeployRequestSerializer,
    RollbackRequestSerializer,
    RollbackResponseSerializer,
)
from models_app import selectors as model_selectors
from registry_site.idempotency import IdempotentPostsMixin


class DeploymentViewSet(
    IdempotentPostsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = Deployment.objects.select_related("model", "model_version")
    serializer_class = DeploymentSerializer
    filterset_class = DeploymentFilter
    ordering = ("-id",)
    action_verbs = {"rollback": "rollback"}  # deployments_app.rollback_deployment (deploy is POST: add)

    def get_object(self) -> Deployment:
        try:
            return super().get_object()
        except Http404:
            raise selectors.deployment_not_found(self.kwargs["pk"]) from None

    @extend_schema(
        request=DeployRequestSerializer,
        responses={201: DeploymentSerializer, 200: DeploymentSerializer},
        description="Deploy a version to a target. 201 with the new deployment; 200 when that version "
        "is already the active one on the target (nothing changes).",
    )
    def deploy(self, request: Request) -> Response:
        body = DeployRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        version = model_selectors.get_version(data["model_name"], data["version"])
        user = request.user
        result = services.deploy_version(
            version=version,
            target=data["deployment_target"],
            acting_user=user,
            # Who deployed is the token's user; a client's own claim counts only in local mode.
            deployed_by=user.get_username() if user.is_authenticated else data["deployed_by"],
            deployment_config=data.get("deployment_config"),
        )
        deployment = self.get_queryset().get(pk=result.deployment.pk)
        return Response(
            DeploymentSerializer(deployment).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

    @extend_schema(request=RollbackRequestSerializer, responses=RollbackResponseSerializer)
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: int | None = None) -> Response:
        body = RollbackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.rollback_deployment(deployment=self.get_object(), reason=body.validated_data["reason"])
        rolled_back = self.get_queryset().get(pk=result.rolled_back.pk)
        restored = self.get_queryset().get(pk=result.restored.pk) if result.restored else None
        if restored:
            detail = (
                f"Rolled back; version '{restored.model_version.version}' is active on "
                f"'{rolled_back.deployment_target}' again."
            )
        else:
            detail = (
                f"Rolled back; no earlier deployment to restore, so '{rolled_back.deployment_target}' is now empty."
            )
        return Response(
            {
                "rolled_back": DeploymentSerializer(rolled_back).data,
                "restored": DeploymentSerializer(restored).data if restored else None,
                "detail": detail,
            }
        )
