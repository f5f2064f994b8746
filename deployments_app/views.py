"""REST endpoints for deployments: the seed's POST /deploy, the deployment history and rollback; the
targets (GET/POST /targets, GET/PATCH/DELETE /targets/{name}); and what one model has on each target
(GET /models/{m}/targets, its file, its rollback)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from deployments_app import alerts, experiments, selectors, services
from deployments_app.filters import AlertFilter, DeploymentFilter
from deployments_app.models import (
    Alert,
    AlertRule,
    Approval,
    Deployment,
    DeploymentStatus,
    Experiment,
    PromotionPolicy,
    Target,
)
from deployments_app.serializers import (
    AlertRuleSerializer,
    AlertSerializer,
    ApprovalRequestSerializer,
    ApprovalSerializer,
    AssignmentSerializer,
    ConcludeRequestSerializer,
    DeployCheckSerializer,
    DeploymentSerializer,
    DeployRequestSerializer,
    ExperimentRequestSerializer,
    ExperimentResultsSerializer,
    ExperimentSerializer,
    ModelTargetSerializer,
    PolicyRefusedSerializer,
    PolicySerializer,
    ResultsAcceptedSerializer,
    ResultsRequestSerializer,
    RollbackRequestSerializer,
    RollbackResponseSerializer,
    TargetChangeSerializer,
    TargetSerializer,
    WeightsRequestSerializer,
)
from models_app import selectors as model_selectors
from models_app.downloads import file_response
from models_app.models import RegisteredModel
from registry_site.errors import Conflict, InvalidInput, NotFound
from registry_site.idempotency import IdempotentPostsMixin

# GET /models/{m}/targets shows this many of the latest deployments per target (history_url has them all).
HISTORY_SHOWN = 10
TARGET_ORDER = ("display_order", "name")
ASSIGNMENT_KEY_MAX = 256
MODEL_NAME = OpenApiParameter("name", str, OpenApiParameter.PATH, description="The model's name.")
TARGET_NAME = OpenApiParameter("target", str, OpenApiParameter.PATH, description="A target's name, in any case.")


def _rollback_response(result: services.RollbackResult) -> Response:
    deployments = Deployment.objects.select_related("model", "model_version")
    rolled_back = deployments.get(pk=result.rolled_back.pk)
    restored = deployments.get(pk=result.restored.pk) if result.restored else None
    target = rolled_back.deployment_target_id
    if restored:
        detail = f"Rolled back; version '{restored.model_version.version}' is active on '{target}' again."
    else:
        detail = f"Rolled back; no earlier deployment to restore, so '{target}' is now empty."
    return Response(
        {
            "rolled_back": DeploymentSerializer(rolled_back).data,
            "restored": DeploymentSerializer(restored).data if restored else None,
            "detail": detail,
        }
    )


class DeploymentViewSet(
    IdempotentPostsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = Deployment.objects.select_related("model", "model_version")
    serializer_class = DeploymentSerializer
    filterset_class = DeploymentFilter
    ordering = ("-id",)
    action_verbs = {"rollback": "rollback"}  # deployments_app.rollback_deployment (deploy is POST: add)
    # Where a token's model pattern finds the model's name (registry_site.permissions); a rollback's
    # target is the deployment's own (RegistryPermission.has_object_permission).
    model_body_fields = {"deploy": "model_name"}
    model_name_field = "model__name"

    def get_object(self) -> Deployment:
        try:
            return super().get_object()
        except Http404:
            raise selectors.deployment_not_found(self.kwargs["pk"]) from None

    @extend_schema(
        request=DeployRequestSerializer,
        responses={
            201: DeploymentSerializer,
            (200, "application/json"): PolymorphicProxySerializer(
                "DeployOrCheck", [DeploymentSerializer, DeployCheckSerializer], resource_type_field_name=None
            ),
            409: OpenApiResponse(
                PolicyRefusedSerializer,
                description="Refused by a promotion policy (`checks` lists every rule); or the registry's state "
                "forbids it (an archived version, one without a file); or a request with the same "
                "Idempotency-Key is still being handled.",
            ),
        },
        description="Deploy a version to a target. 201 with the new deployment; 200 when that version "
        "is already the active one on the target (nothing changes). The target's promotion policies are "
        "evaluated first: a deploy that breaks any rule is a 409 listing every rule with what it saw. "
        "With `dry_run: true`: 200 with that evaluation (`allowed`, `checks`), and nothing is written.",
    )
    def deploy(self, request: Request) -> Response:
        body = DeployRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        version = model_selectors.get_version(data["model_name"], data["version"])
        user = request.user
        if data["dry_run"]:
            check = services.check_deploy(version=version, target=data["deployment_target"], acting_user=user)
            return Response(DeployCheckSerializer(_check_body(check)).data)
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
        return _rollback_response(result)


def _check_body(check: services.DeployCheck) -> dict:
    return {
        "dry_run": True,
        "allowed": check.allowed,
        "already_active": check.already_active,
        "model_name": check.version.model.name,
        "version": check.version.version,
        "deployment_target": check.target.name,
        "checks": [result.as_dict() for result in check.checks],
    }


class TargetViewSet(IdempotentPostsMixin, viewsets.ModelViewSet):
    """The deployment targets. Reads need view_target (every role); writes the admin role's
    add/change/delete_target (registry_site.permissions' CRUD map)."""

    queryset = Target.objects.all()
    serializer_class = TargetSerializer
    parser_classes = [JSONParser]
    lookup_field = "name"
    ordering = TARGET_ORDER

    def get_object(self) -> Target:
        return selectors.get_target_or_404(self.kwargs["name"])

    def get_serializer_class(self):
        return TargetChangeSerializer if self.action == "partial_update" else TargetSerializer

    @extend_schema(request=TargetSerializer, responses={201: TargetSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        body = TargetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        target = services.create_target(**body.validated_data)
        response = Response(TargetSerializer(target).data, status=status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"/targets/{target.name}")
        return response

    @extend_schema(request=TargetChangeSerializer, responses=TargetSerializer)
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        body = TargetChangeSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        target = services.update_target(target=self.get_object(), changes=dict(body.validated_data))
        return Response(TargetSerializer(target).data)

    def perform_destroy(self, instance: Target) -> None:
        services.delete_target(target=instance)


class ModelTargetViewSet(IdempotentPostsMixin, viewsets.GenericViewSet):
    """What one model has on each target: GET /models/{m}/targets, the active version's file and the
    rollback of the target. Deployments are what these read and write, so their permissions apply
    (view_deployment, rollback_deployment)."""

    queryset = Deployment.objects.all()
    serializer_class = ModelTargetSerializer
    ordering = TARGET_ORDER
    action_verbs = {"rollback": "rollback"}
    model_kwarg = "name"  # a token's model pattern and deploy targets apply to these (registry_site.permissions)
    target_kwarg = "target"

    def _active(self, missing: type[NotFound] | type[Conflict] = NotFound) -> Deployment:
        """The model's active deployment on the URL's target; `missing` is raised when there is none."""
        model = model_selectors.get_model(self.kwargs["name"])
        target = selectors.get_target_or_404(self.kwargs["target"])
        active = selectors.active_deployment(model.pk, target)
        if active is None:
            raise missing(f"No version of model '{model.name}' is active on target '{target.name}'.")
        return active

    def _history(self, model_id: int, names: list[str]) -> dict[str, list[Deployment]]:
        """The latest HISTORY_SHOWN deployments of the model on each of `names`: one query, whatever the
        history's length (a row number per target, newest first)."""
        ranked = (
            Deployment.objects.filter(model_id=model_id, deployment_target__in=names)
            .select_related("model", "model_version")
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("deployment_target")],
                    order_by=[F("deployed_at").desc(), F("id").desc()],
                )
            )
            .filter(rank__lte=HISTORY_SHOWN)
            .order_by("rank")
        )
        history: dict[str, list[Deployment]] = {name: [] for name in names}
        for deployment in ranked:
            history[deployment.deployment_target_id].append(deployment)
        return history

    @extend_schema(
        parameters=[MODEL_NAME],
        responses=ModelTargetSerializer(many=True),
        description="Every known target as this model sees it, in display order: the active deployment "
        f"(null when none), the latest {HISTORY_SHOWN} deployments there, newest first, and the running or "
        "paused experiment's split (null when none).",
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        model = model_selectors.get_model(self.kwargs["name"])
        targets: QuerySet[Target] = self.filter_queryset(selectors.targets())
        page = self.paginate_queryset(targets)
        assert page is not None  # every list is paginated (settings.REST_FRAMEWORK)
        names = [target.name for target in page]
        active = {
            d.deployment_target_id: d
            for d in Deployment.objects.select_related("model", "model_version").filter(
                model=model, deployment_target__in=names, deployment_status=DeploymentStatus.ACTIVE
            )
        }
        history = self._history(model.pk, names)
        splits = experiments.live_splits(model.pk, names)
        rows = [
            {
                "name": target.name,
                "description": target.description,
                "protected": target.protected,
                "active": active.get(target.name),
                "history": history[target.name],
                "experiment": splits.get(target.name),
                "history_url": "/deployments?" + urlencode({"model": model.name, "target": target.name}),
            }
            for target in page
        ]
        return self.get_paginated_response(ModelTargetSerializer(rows, many=True).data)

    @extend_schema(
        parameters=[MODEL_NAME, TARGET_NAME],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 304: None, 404: None},
        description="The file of the version active on the target, as GET .../versions/{version}/file serves "
        "it (ETag, Range, If-None-Match).",
    )
    @action(detail=False, methods=["get"], url_path="file")
    def file(self, request: Request, *args, **kwargs) -> HttpResponse:
        active = self._active()
        return file_response(request, active.model_version)

    @extend_schema(
        parameters=[
            MODEL_NAME,
            TARGET_NAME,
            OpenApiParameter(
                "key", str, OpenApiParameter.QUERY, required=True, description="The unit: a user or request id."
            ),
        ],
        responses=AssignmentSerializer,
        description="Which version serves this unit: while an experiment runs on the target, its variant "
        "(deterministic: the bucket of sha256(salt:key), GET /experiments/{id} publishes the formula and the "
        "ranges); while it is paused, its control; otherwise the target's active version (404 when none).",
    )
    @action(detail=False, methods=["get"])
    def assignment(self, request: Request, *args, **kwargs) -> Response:
        params = request.query_params
        unknown = sorted(set(params) - {"key"})
        if unknown:
            raise InvalidInput(
                f"Unknown query parameter {', '.join(unknown)}; known: key.",
                errors={name: ["Unknown query parameter; known: key."] for name in unknown},
            )
        keys = params.getlist("key")
        if len(keys) != 1 or not 1 <= len(keys[0]) <= ASSIGNMENT_KEY_MAX:
            raise InvalidInput(f"key: give it once, 1 to {ASSIGNMENT_KEY_MAX} characters.", field="key")
        found = experiments.assign(model_name=self.kwargs["name"], target_name=self.kwargs["target"], key=keys[0])
        version = found.version
        return Response(
            {
                "experiment": found.experiment.pk if found.experiment else None,
                "state": found.experiment.state if found.experiment else None,
                "variant": found.variant.name if found.variant else None,
                "bucket": found.bucket,
                "version": version.version,
                "file_url": experiments.file_url(self.kwargs["name"], version),
                "sha256": version.artifact_id,
            }
        )

    @extend_schema(
        parameters=[MODEL_NAME, TARGET_NAME], request=RollbackRequestSerializer, responses=RollbackResponseSerializer
    )
    @action(detail=False, methods=["post"])
    def rollback(self, request: Request, *args, **kwargs) -> Response:
        """Roll back what is active for the model on the target, as POST /deployments/{id}/rollback does."""
        body = RollbackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        # Nothing active is a state of the target, not a missing resource: 409, as rolling back a
        # deployment that is no longer active is.
        active = self._active(missing=Conflict)
        result = services.rollback_deployment(deployment=active, reason=body.validated_data["reason"])
        return _rollback_response(result)


EXPERIMENT_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The experiment's id.")


class ExperimentViewSet(IdempotentPostsMixin, viewsets.GenericViewSet):
    """A/B tests (issue #11): a model's experiments on a target, and each experiment's life, results and
    conclusion. Reads need view_experiment; create add_experiment; start, pause, resume, stop and weights
    change_experiment; reporting results report_experiment; concluding conclude_experiment (and deploying
    the winner to a protected target the deployer role, as any deploy)."""

    queryset = Experiment.objects.all()
    serializer_class = ExperimentSerializer
    parser_classes = [JSONParser]
    ordering = ("-id",)
    action_verbs = {
        "start": "change",
        "pause": "change",
        "resume": "change",
        "stop": "change",
        "weights": "change",
        "report": "report",
        "conclude": "conclude",
    }

    def get_object(self) -> Experiment:
        return experiments.get_experiment(int(self.kwargs["pk"]))

    def _answer(self, experiment: Experiment, code: int = status.HTTP_200_OK) -> Response:
        return Response(ExperimentSerializer(experiments.get_experiment(experiment.pk)).data, status=code)

    @extend_schema(
        parameters=[MODEL_NAME, TARGET_NAME],
        responses=ExperimentSerializer(many=True),
        description="The model's experiments on the target, newest first.",
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        model = model_selectors.get_model(self.kwargs["name"])
        target = selectors.get_target_or_404(self.kwargs["target"])
        found = self.filter_queryset(experiments.experiments().filter(model=model, target=target))
        page = self.paginate_queryset(found)
        assert page is not None  # every list is paginated (settings.REST_FRAMEWORK)
        return self.get_paginated_response(ExperimentSerializer(page, many=True).data)

    @extend_schema(
        parameters=[MODEL_NAME, TARGET_NAME],
        request=ExperimentRequestSerializer,
        responses={201: ExperimentSerializer},
        description="A draft experiment: 2 to 10 variants (versions of the model with a file, deployable to "
        "the target), exactly one the control, weights in basis points summing to 10000.",
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        # What the path names first: an unknown model or target is a 404 whatever the body says.
        model = model_selectors.get_model(self.kwargs["name"])
        selectors.get_target_or_404(self.kwargs["target"])
        body = ExperimentRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        specs = [experiments.VariantSpec(**variant) for variant in data.pop("variants")]
        user = request.user
        experiment = experiments.create_experiment(
            model=model,
            target=self.kwargs["target"],
            variants=specs,
            acting_user=user,
            created_by=user.get_username() if user.is_authenticated else "",
            **data,
        )
        response = self._answer(experiment, status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"/experiments/{experiment.pk}")
        return response

    @extend_schema(parameters=[EXPERIMENT_ID], responses=ExperimentSerializer)
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        """The experiment, with its published configuration: the salt, the hash and each variant's bucket
        ranges, so a serving system can assign units itself."""
        return Response(ExperimentSerializer(self.get_object()).data)

    @extend_schema(parameters=[EXPERIMENT_ID], request=None, responses=ExperimentSerializer)
    def start(self, request: Request, *args, **kwargs) -> Response:
        """Start a draft (409 if another experiment of the model runs or is paused on the target)."""
        return self._answer(experiments.start_experiment(experiment=self.get_object(), acting_user=request.user))

    @extend_schema(parameters=[EXPERIMENT_ID], request=None, responses=ExperimentSerializer)
    def pause(self, request: Request, *args, **kwargs) -> Response:
        """Pause a running experiment: every unit is assigned the control until it resumes."""
        return self._answer(experiments.pause_experiment(experiment=self.get_object()))

    @extend_schema(parameters=[EXPERIMENT_ID], request=None, responses=ExperimentSerializer)
    def resume(self, request: Request, *args, **kwargs) -> Response:
        return self._answer(experiments.resume_experiment(experiment=self.get_object()))

    @extend_schema(parameters=[EXPERIMENT_ID], request=None, responses=ExperimentSerializer)
    def stop(self, request: Request, *args, **kwargs) -> Response:
        """Stop without a winner: the target serves its active version again."""
        return self._answer(experiments.stop_experiment(experiment=self.get_object()))

    @extend_schema(parameters=[EXPERIMENT_ID], request=WeightsRequestSerializer, responses=ExperimentSerializer)
    def weights(self, request: Request, *args, **kwargs) -> Response:
        """Ramp: change variants' weights (the whole must still sum to 10000)."""
        experiment = self.get_object()
        body = WeightsRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._answer(experiments.set_weights(experiment=experiment, weights=body.validated_data["weights"]))

    @extend_schema(parameters=[EXPERIMENT_ID], responses=ExperimentResultsSerializer)
    def results(self, request: Request, *args, **kwargs) -> Response:
        """Per variant the estimate with its 95% interval; against the control the difference, relative lift
        and p-value (two-proportion z-test for rates, Welch's t-test for means); the sample-ratio check of
        exposures against weights; and a verdict."""
        return Response(experiments.results(self.get_object()))

    @extend_schema(
        parameters=[EXPERIMENT_ID], request=ResultsRequestSerializer, responses={201: ResultsAcceptedSerializer}
    )
    def report(self, request: Request, *args, **kwargs) -> Response:
        """Report observed results in batches, all or nothing."""
        experiment = self.get_object()
        body = ResultsRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        recorded = experiments.report_results(
            experiment=experiment, batches=[dict(batch) for batch in body.validated_data["batches"]]
        )
        return Response({"recorded": len(recorded)}, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[EXPERIMENT_ID], request=ConcludeRequestSerializer, responses=ExperimentSerializer)
    def conclude(self, request: Request, *args, **kwargs) -> Response:
        """Deploy the winner to the target as its only active version (the deploy rules apply), make it the
        model's default if asked, and conclude the experiment with the results snapshot and the decision."""
        experiment = self.get_object()
        body = ConcludeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = request.user
        experiment = experiments.conclude_experiment(
            experiment=experiment,
            winner=body.validated_data["winner"],
            make_default=body.validated_data["make_default"],
            acting_user=user,
            deployed_by=user.get_username() if user.is_authenticated else "",
        )
        return self._answer(experiment)


class PolicyViewSet(viewsets.GenericViewSet):
    """A target's promotion policy (/targets/{target}/policy) and a model's policy on a target, which
    adds to the target's (/models/{name}/targets/{target}/policy). Reads need view_promotionpolicy (every
    role), writes the admin role's change/delete_promotionpolicy."""

    queryset = PromotionPolicy.objects.all()
    serializer_class = PolicySerializer
    parser_classes = [JSONParser]
    ordering = ("id",)

    def _where(self) -> tuple[Target, RegisteredModel | None]:
        self.filter_queryset(self.get_queryset())  # an unknown query parameter is a 400
        model = model_selectors.get_model(self.kwargs["name"]) if "name" in self.kwargs else None
        return selectors.get_target_or_404(self.kwargs["target"]), model

    def get_object(self) -> PromotionPolicy:
        """The policy named by the URL; no policy is a policy whose rules are all off (unsaved), shown
        as such rather than as a missing resource. (OPTIONS asks for it too, before a PUT.)"""
        target, model = self._where()
        found = (
            PromotionPolicy.objects.select_related("target", "model", "soak_target")
            .filter(target=target, model=model)
            .first()
        )
        return found or PromotionPolicy(target=target, model=model)

    @extend_schema(
        parameters=[TARGET_NAME],
        responses=PolicySerializer,
        description="The policy; every rule off (and updated_at null) when none was set.",
    )
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return Response(PolicySerializer(self.get_object()).data)

    @extend_schema(
        parameters=[TARGET_NAME],
        request=PolicySerializer,
        responses=PolicySerializer,
        description="Replace the policy whole (created when missing): a rule left out is off.",
    )
    def update(self, request: Request, *args, **kwargs) -> Response:
        target, model = self._where()
        body = PolicySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        policy = services.set_policy(target=target, model=model, rules=dict(body.validated_data))
        return Response(PolicySerializer(policy).data)

    @extend_schema(
        parameters=[TARGET_NAME], responses={204: None}, description="Remove the policy (204 when there was none)."
    )
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        target, model = self._where()
        services.delete_policy(target=target, model=model)
        return Response(status=status.HTTP_204_NO_CONTENT)


VERSION_NAME = OpenApiParameter("version", str, OpenApiParameter.PATH, description="The version.")


class ApprovalViewSet(IdempotentPostsMixin, viewsets.GenericViewSet):
    """Approvals of a version for targets: the four-eyes rule of a promotion policy counts those of users
    other than the one deploying. Listing needs view_approval, approving add_approval (the deployer and
    admin roles)."""

    queryset = Approval.objects.all()
    serializer_class = ApprovalSerializer
    ordering = ("-created_at", "-id")

    @extend_schema(parameters=[MODEL_NAME, VERSION_NAME], responses=ApprovalSerializer(many=True))
    def list(self, request: Request, *args, **kwargs) -> Response:
        version = model_selectors.get_version(self.kwargs["name"], self.kwargs["version"])
        approvals = self.filter_queryset(
            Approval.objects.select_related("version__model", "target", "user").filter(version=version)
        )
        page = self.paginate_queryset(approvals)
        assert page is not None  # every list is paginated (settings.REST_FRAMEWORK)
        return self.get_paginated_response(ApprovalSerializer(page, many=True).data)

    @extend_schema(
        parameters=[MODEL_NAME, VERSION_NAME],
        request=ApprovalRequestSerializer,
        responses={201: ApprovalSerializer},
        description="Approve the version for a target, as the token's user (an approval names its user).",
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        body = ApprovalRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = model_selectors.get_version(self.kwargs["name"], self.kwargs["version"])
        approval = services.approve_version(
            version=version,
            target=body.validated_data["target"],
            approver=request.user,
            comment=body.validated_data["comment"],
        )
        return Response(ApprovalSerializer(approval).data, status=status.HTTP_201_CREATED)


RULE_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The alert rule's id.")
ALERT_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The alert's id.")


class AlertRuleViewSet(IdempotentPostsMixin, viewsets.GenericViewSet):
    """A model's alert rules (issue #9 §4): the work is in deployments_app.alerts. Reads need
    view_alertrule (every role), writes add/change/delete_alertrule (the deployer and admin roles); a rule
    that rolls back or pauses an experiment also needs its author to hold that permission."""

    queryset = AlertRule.objects.all()
    serializer_class = AlertRuleSerializer
    parser_classes = [JSONParser]
    ordering = ("id",)
    model_kwarg = "name"  # a token's model pattern applies to the URL's model (registry_site.permissions)

    def get_object(self) -> AlertRule:
        model = model_selectors.get_model(self.kwargs["name"])
        found = alerts.alert_rules_listed().filter(model=model, pk=self.kwargs["pk"]).first()
        if found is None:
            raise NotFound(f"Model '{model.name}' has no alert rule {self.kwargs['pk']}.")
        return found

    def _answer(self, rule: AlertRule, code: int = status.HTTP_200_OK) -> Response:
        return Response(AlertRuleSerializer(alerts.alert_rules_listed().get(pk=rule.pk)).data, status=code)

    @extend_schema(parameters=[MODEL_NAME], responses=AlertRuleSerializer(many=True))
    def list(self, request: Request, *args, **kwargs) -> Response:
        """The model's alert rules, oldest first."""
        found = self.filter_queryset(self.get_queryset())  # an unknown query parameter is a 400
        model = model_selectors.get_model(self.kwargs["name"])
        page = self.paginate_queryset(found.filter(model=model) & alerts.alert_rules_listed())
        assert page is not None  # every list is paginated (settings.REST_FRAMEWORK)
        return self.get_paginated_response(AlertRuleSerializer(page, many=True).data)

    @extend_schema(
        parameters=[MODEL_NAME],
        request=AlertRuleSerializer,
        responses={201: AlertRuleSerializer},
        description="A new rule: a metric (one some version of the model has) and optionally its source, an "
        "aggregate over a window (window_points or window_minutes), a condition (above or below a threshold, "
        "a drop against a baseline version by drop_by, or no_data), min_points, severity and an action "
        "(none, rollback, pause_experiment; both need a target).",
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        model = model_selectors.get_model(self.kwargs["name"])
        body = AlertRuleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = request.user
        rule = alerts.create_rule(
            model=model,
            values=dict(body.validated_data),
            acting_user=user,
            created_by=user.get_username() if user.is_authenticated else "",
        )
        response = self._answer(rule, status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"/models/{model.name}/alert-rules/{rule.pk}")
        return response

    @extend_schema(parameters=[MODEL_NAME, RULE_ID], responses=AlertRuleSerializer)
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return Response(AlertRuleSerializer(self.get_object()).data)

    @extend_schema(parameters=[MODEL_NAME, RULE_ID], request=AlertRuleSerializer, responses=AlertRuleSerializer)
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        """Change any of the rule's settings; the whole must still be valid. Disabling it resolves its alerts."""
        rule = self.get_object()
        body = AlertRuleSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        rule = alerts.update_rule(rule=rule, changes=dict(body.validated_data), acting_user=request.user)
        return self._answer(rule)

    @extend_schema(parameters=[MODEL_NAME, RULE_ID], responses={204: None})
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        """Delete the rule and its alerts (the audit trail keeps their events)."""
        alerts.delete_rule(rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertViewSet(IdempotentPostsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alerts of every model, newest first: `?state=firing` for what fires now. Reads need view_alert;
    acknowledging acknowledge_alert (the deployer and admin roles)."""

    queryset = alerts.alerts()
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    ordering = ("-started_at", "-id")
    action_verbs = {"acknowledge": "acknowledge"}  # deployments_app.acknowledge_alert
    model_name_field = "rule__model__name"  # a token's model pattern leaves other models' alerts out

    def get_object(self) -> Alert:
        found = self.filter_queryset(self.get_queryset()).filter(pk=self.kwargs["pk"]).first()
        if found is None:
            raise NotFound(f"Alert {self.kwargs['pk']} not found.")
        return found

    @extend_schema(parameters=[ALERT_ID], request=None, responses=AlertSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, *args, **kwargs) -> Response:
        """Say someone has seen the alert (who and when; 409 when someone already did). It keeps firing
        until its rule stops holding."""
        alert = alerts.acknowledge_alert(alert=self.get_object(), acting_user=request.user)
        return Response(AlertSerializer(alerts.get_alert(alert.pk)).data)
