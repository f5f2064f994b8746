"""REST endpoints for models and their versions, at the seed's root paths. Viewsets validate input with
serializers and hand every change to models_app.services."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from django.utils.functional import cached_property
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from models_app import comparison, metric_history, selectors, services
from models_app.downloads import file_response
from models_app.filters import (
    MetricPointFilter,
    MetricSummaryFilter,
    ModelVersionFilter,
    RegisteredModelFilter,
    keyset_order,
)
from models_app.models import SOURCE_PATTERN, SOURCE_RULE, MetricPoint, ModelVersion, RegisteredModel
from models_app.serializers import (
    CompareQuerySerializer,
    CrossModelCompareQuerySerializer,
    FileUploadSerializer,
    MetricBatchSerializer,
    MetricPointSerializer,
    MetricsRecordedSerializer,
    MetricSummarySerializer,
    ModelVersionSerializer,
    RegisteredModelChangeSerializer,
    RegisteredModelListSerializer,
    RegisteredModelSerializer,
    VersionChangeSerializer,
    VersionComparisonSerializer,
    VersionCreateJSONSerializer,
    VersionCreateSerializer,
)
from models_app.uploads import receive_raw_body, safe_file_name
from registry_site.errors import InvalidInput, NotFound
from registry_site.filters import StrictFilterBackend
from registry_site.idempotency import IdempotentPostsMixin
from registry_site.pagination import RegistryCursorPagination
from registry_site.parsers import RegistryMultiPartParser
from registry_site.permissions import check_models_in_scope, model_scope_regex
from registry_site.validators import METRIC_NAME_IN_PATTERN, METRIC_NAME_PATTERN, METRIC_NAME_RULE


@extend_schema_view(partial_update=extend_schema(request=RegisteredModelChangeSerializer))
class RegisteredModelViewSet(IdempotentPostsMixin, viewsets.ModelViewSet):
    queryset = selectors.models_with_default()
    serializer_class = RegisteredModelSerializer
    filterset_class = RegisteredModelFilter
    lookup_field = "name"
    ordering = ("name",)
    # Where a token's model pattern finds the model's name (registry_site.permissions).
    model_kwarg = "name"
    model_body_fields = {"create": "name"}
    model_name_field = "name"

    def get_object(self) -> RegisteredModel:
        try:
            return super().get_object()
        except Http404:
            raise selectors.model_not_found(self.kwargs["name"]) from None

    def get_serializer_class(self):
        # A list leaves out each model's card (up to 100,000 characters); GET /models/{name} has it.
        return RegisteredModelListSerializer if self.action == "list" else super().get_serializer_class()

    def list(self, request: Request, *args, **kwargs) -> Response:
        # A page that every model may appear on (a token limited to some models has its list filtered).
        response = _plain_page(self, selectors.model_pages) if model_scope_regex(request, self) is None else None
        return response if response is not None else super().list(request, *args, **kwargs)

    def perform_create(self, serializer: RegisteredModelSerializer) -> None:
        serializer.instance = services.create_model(**serializer.validated_data)

    def perform_update(self, serializer: RegisteredModelSerializer) -> None:
        changes = {k: v for k, v in serializer.validated_data.items() if k != "name"}
        serializer.instance = services.update_model(model=serializer.instance, changes=changes)

    def perform_destroy(self, instance: RegisteredModel) -> None:
        services.delete_model(model=instance)


def _plain_page(view: viewsets.GenericViewSet, pages: Callable[[], Any]) -> Response | None:
    """A list asked for with nothing but a cursor and a page size (no filter, no chosen order: what clients
    walk), read through `pages()`, prepared pages (registry_site.prepared.PreparedPages): its query compiled
    once per page shape, no queryset built only to be filtered by nothing. None for any other list."""
    if not set(view.request.query_params) <= StrictFilterBackend.always_allowed:
        return None
    page = view.paginator.paginate_queryset(pages(), view.request, view=view)
    return view.get_paginated_response(view.get_serializer(page, many=True).data)


# OpenAPI 3.0 cannot declare a parameter whose name the client chooses: the list's description says it, and
# so does a vendor extension that tools may read (schemathesis, which generates only declared ones, skips it).
VERSION_LIST_HELP = f"""The model's versions, newest first unless `ordering` says otherwise.

Besides the parameters below, filter by any metric or tag, with parameters named after them:

- `metric.<name>=<number>`, or `metric.<name>__<lookup>=<number>` with the lookups `exact`, `gt`, `gte`,
  `lt` and `lte`: e.g. `?metric.auc__gte=0.9`. The seed's five (`metric.accuracy`...) work the same way.
  A version without the metric never matches.
- `tag.<key>=<value>`: e.g. `?tag.team=vision`.

Names and keys: {METRIC_NAME_RULE}. A number is written as in JSON, finite. Each may be given once; an
unknown parameter, a bad name or number, is a 400 naming it."""
DYNAMIC_PARAMETERS = [
    {
        "in": "query",
        "name-pattern": f"^metric\\.{METRIC_NAME_IN_PATTERN}(__(exact|gt|gte|lt|lte))?$",
        "schema": {"type": "number", "format": "double"},
        "example": {"metric.auc__gte": 0.9},
    },
    {"in": "query", "name-pattern": f"^tag\\.{METRIC_NAME_IN_PATTERN}$", "schema": {"type": "string"}},
]


def _version_response(version: ModelVersion, status_code: int = status.HTTP_200_OK) -> Response:
    shown = selectors.version_shown_by_id(version.pk)
    if shown is None:  # deleted since it was written: it cannot be, the model's lock was held
        raise selectors.version_not_found(version.model.name, version.version)
    return Response(ModelVersionSerializer(shown).data, status=status_code)


@extend_schema_view(
    create=extend_schema(
        request={"application/json": VersionCreateJSONSerializer, "multipart/form-data": VersionCreateSerializer},
        responses={201: ModelVersionSerializer, 200: ModelVersionSerializer},
        description="Register a version. 201 with the new version; 200 with the registered one when the "
        "version exists with the same file (sha256) and the same value of every field sent (`status` and "
        "`is_default` aside): a re-sent registration changes nothing. 409 naming each field that differs "
        "otherwise.",
    ),
    partial_update=extend_schema(request=VersionChangeSerializer, responses=ModelVersionSerializer),
    list=extend_schema(description=VERSION_LIST_HELP, extensions={"x-dynamic-query-parameters": DYNAMIC_PARAMETERS}),
)
class ModelVersionViewSet(
    IdempotentPostsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = selectors.versions_with_files_and_targets()
    serializer_class = ModelVersionSerializer
    filterset_class = ModelVersionFilter
    lookup_field = "version"
    ordering = ("-id",)
    extra_query_params = ("filename", "sha256")  # PUT .../file
    action_verbs = {"set_default": "change"}  # making a version the default changes it
    model_kwarg = "name"  # a token's model pattern applies to the URL's model (registry_site.permissions)

    @cached_property
    def registered_model(self) -> RegisteredModel:
        return selectors.get_model(self.kwargs["name"])

    def get_object(self) -> ModelVersion:
        name, label = self.kwargs["name"], self.kwargs["version"]
        if self.request.query_params:  # whatever the filters say about them (unknown ones are a 400)
            try:
                return super().get_object()
            except Http404:
                raise selectors.version_not_found(name, label) from None
        # The hot path: its SQL compiled once; a version only shown (GET) is read as a row view.
        if self.action == "retrieve":
            version = selectors.version_shown(name, label)
        else:
            version = selectors.version_by_names(name, label)
        if version is None:
            raise selectors.version_not_found(name, label)
        self.check_object_permissions(self.request, version)
        return version

    def get_queryset(self) -> QuerySet[ModelVersion]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no URL kwargs
            return ModelVersion.objects.none()
        # One query for a version (or a page) by the model's name; whether the model exists is asked only
        # when nothing was found (get_object, list, _default, latest).
        if self.action == "list":
            return selectors.versions_listed(self.kwargs["name"])
        return selectors.versions_of(self.kwargs["name"])

    def list(self, request: Request, *args, **kwargs) -> Response:
        name = self.kwargs["name"]
        response = _plain_page(self, lambda: selectors.version_pages(name))
        if response is None:
            response = super().list(request, *args, **kwargs)
        if not response.data["results"] and not selectors.model_exists(name):
            raise selectors.model_not_found(name)
        return response

    def _found(self, version: ModelVersion | None, missing: str) -> ModelVersion:
        if version is None:
            name = self.kwargs["name"]
            if not selectors.model_exists(name):
                raise selectors.model_not_found(name)
            raise NotFound(f"Model '{name}' has {missing}.")
        return version

    def keyset_order(self, request: Request, queryset: QuerySet[ModelVersion]):
        """`?ordering=` (checked by ModelVersionFilter) for the cursor pagination; None: newest first."""
        ordering = request.query_params.get("ordering")
        return keyset_order(ordering, queryset, self.registered_model) if ordering else None

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = VersionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        upload = fields.pop("file", None)
        if upload is not None:
            upload.name = safe_file_name(upload.name)
        try:
            registration = services.register_version(
                model=self.registered_model,
                version=fields.pop("version"),
                format=fields.pop("format"),
                upload=upload,
                declared_sha256=fields.pop("sha256", None) or _digest_header(request),
                make_default=fields.pop("is_default", False),
                **fields,
            )
        finally:
            if upload is not None:
                upload.close()  # the staged copy goes now, whether it was stored, refused or not needed
        version = registration.version
        if not registration.created:  # the same version re-sent: what is registered, as it is
            return _version_response(version)
        response = _version_response(version, status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(f"/models/{version.model.name}/versions/{version.version}")
        return response

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        serializer = VersionChangeSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        version = services.update_version(version=self.get_object(), changes=serializer.validated_data)
        return _version_response(version)

    def perform_destroy(self, instance: ModelVersion) -> None:
        services.delete_version(version=instance)

    def _default(self) -> ModelVersion:
        return self._found(selectors.default_version_of(self.kwargs["name"]), "no default version")

    @action(detail=False, methods=["get"], url_path="default")
    def default(self, request: Request, *args, **kwargs) -> Response:
        shown = self._found(selectors.default_version_shown(self.kwargs["name"]), "no default version")
        return Response(self.get_serializer(shown).data)

    @action(detail=False, methods=["get"], url_path="latest")
    def latest(self, request: Request, *args, **kwargs) -> Response:
        version = self.get_queryset().order_by("-created_at", "-id").first()
        return Response(self.get_serializer(self._found(version, "no versions")).data)

    @extend_schema(request=None, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"], url_path="default")
    def set_default(self, request: Request, *args, **kwargs) -> Response:
        return _version_response(services.set_default_version(version=self.get_object()))

    @extend_schema(
        methods=["GET"],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 304: None, 404: None},
    )
    @extend_schema(
        methods=["PUT"],
        request={
            "application/octet-stream": OpenApiTypes.BINARY,
            "multipart/form-data": FileUploadSerializer,
        },
        responses=ModelVersionSerializer,
    )
    @action(
        detail=True,
        methods=["get", "put"],
        url_path="file",
        parser_classes=[RegistryMultiPartParser],
    )
    def file(self, request: Request, *args, **kwargs) -> HttpResponse:
        version = self.get_object()
        if request.method in ("GET", "HEAD"):
            return file_response(request, version)
        return self._attach(request, version)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 304: None, 404: None})
    @action(detail=False, methods=["get"], url_path="default/file")
    def default_file(self, request: Request, *args, **kwargs) -> HttpResponse:
        return file_response(request, self._default())

    def _attach(self, request: Request, version: ModelVersion) -> Response:
        content_type = request.META.get("CONTENT_TYPE", "")
        if content_type.startswith("multipart/form-data"):
            serializer = FileUploadSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            upload = serializer.validated_data["file"]
            declared = serializer.validated_data.get("sha256")
        elif content_type.startswith("application/octet-stream"):
            # The fast path: the body is the file, with no multipart parsing.
            name = safe_file_name(request.query_params.get("filename") or f"{version.model.name}-{version.version}")
            upload = receive_raw_body(request._request, file_name=name)
            declared = request.query_params.get("sha256") or _digest_header(request)
        else:
            raise exceptions.UnsupportedMediaType(
                content_type or "(none)",
                detail="Send the file as application/octet-stream or as multipart/form-data with a 'file' field.",
            )
        upload.name = safe_file_name(upload.name)
        try:
            version = services.attach_file(version=version, upload=upload, declared_sha256=declared)
        finally:
            upload.close()
        return _version_response(version)


def _digest_header(request: Request) -> str | None:
    """sha256 from a `Content-Digest: sha-256=:<base64>:` or `Digest: SHA-256=<base64>` header."""
    for header, pattern in (
        ("HTTP_CONTENT_DIGEST", r"sha-256=:([A-Za-z0-9+/=]+):"),
        ("HTTP_DIGEST", r"(?i)sha-256=([A-Za-z0-9+/=]+)"),
    ):
        match = re.search(pattern, request.META.get(header, ""))
        if match:
            try:
                digest = base64.b64decode(match.group(1), validate=True)
            except (binascii.Error, ValueError):
                digest = b""
            if len(digest) != 32:
                raise InvalidInput(
                    f"The {header[5:].replace('_', '-').title()} header is not a base64 sha-256.", field="sha256"
                )
            return digest.hex()
    return None


COMPARE_HELP = """Versions side by side, the first the baseline: each one's facts (status, format, file size, sha256,
format check, where it is deployed, every metric); per metric its values, which is best and each version's
difference from the baseline (absolute, relative, better or not: higher is better, except metrics named
like a loss, latency or error, or those the model's `metric_directions` turns round); whether each
version is a drop-in replacement for the baseline (same format and shapes); and what its training_config
changes. With `window`, `source` or `agg`, the metrics are each version's metric history (over the window,
from the source; all of it otherwise), aggregated, and `points` says how many points are behind each.
400 naming `versions` for fewer than 2 or more than 20; 404 naming what is missing."""


class ComparisonViewSet(viewsets.GenericViewSet):
    """GET /models/{name}/compare and GET /compare: reads of versions, so viewing versions is what they need."""

    queryset = selectors.versions_with_files_and_targets()
    serializer_class = VersionComparisonSerializer
    model_kwarg = "name"  # a token's model pattern applies to the URL's model (registry_site.permissions)

    def _query(self, request: Request, serializer_class: type[CompareQuerySerializer]):
        query = serializer_class(data=request.query_params)
        query.is_valid(raise_exception=True)
        given = query.validated_data
        window = None
        if {"window", "source", "agg"} & set(given):
            window = comparison.Window(given.get("window"), given.get("source"), given.get("agg", "avg"))
        return given["versions"], window

    @extend_schema(parameters=[CompareQuerySerializer], responses=VersionComparisonSerializer, description=COMPARE_HELP)
    @action(detail=False, methods=["get"])
    def in_model(self, request: Request, *args, **kwargs) -> Response:
        refs, window = self._query(request, CompareQuerySerializer)
        entries = comparison.resolve(self.kwargs["name"], refs)
        return Response(VersionComparisonSerializer(comparison.compare(entries, window=window)).data)

    @extend_schema(
        parameters=[CrossModelCompareQuerySerializer],
        responses=VersionComparisonSerializer,
        description=COMPARE_HELP + " Across models: each version is `model:version`; a metric's direction is "
        "the first version's model's.",
    )
    @action(detail=False, methods=["get"])
    def across_models(self, request: Request, *args, **kwargs) -> Response:
        refs, window = self._query(request, CrossModelCompareQuerySerializer)
        check_models_in_scope(request, self, (ref.partition(":")[0] for ref in refs))
        entries = comparison.resolve_across_models(refs)
        return Response(VersionComparisonSerializer(comparison.compare(entries, window=window)).data)


class MetricPointPagination(RegistryCursorPagination):
    """A version's points, newest first (the index (version, timestamp, id) serves it)."""

    ordering = ("-timestamp", "-id")

    def get_ordering(self, request, queryset, view):
        return self.ordering


RECORD_HELP = f"""Record observations of the version's metrics: one point `{{name, value, timestamp?, step?,
source?}}`, a batch as a JSON list of points, or a batch as `{{"points": [...]}}`. Up to
{metric_history.MAX_POINTS_PER_REQUEST:,} points per request (more is a 413 naming `points`); every point is
checked first and then all are recorded, or none. `name`: {METRIC_NAME_RULE}. `value`: a finite number.
`timestamp`: ISO 8601 (without an offset: UTC), default now, at most 5 minutes in the future. `step`: a
whole number from 0. `source`: {SOURCE_RULE}; default `eval`. A problem is a 400 naming its field, with the
point's index in a batch (`points[3].value`). 201 with how many points were recorded."""


# `name` in the query is the metric's; the path's `{name}` is the model's (a published parameter: the README,
# the client's `metric_points(name=...)` and `mvr metrics ls --name` send it), so the schema says which is which.
METRIC_NAME_PARAMETER = OpenApiParameter(
    "name",
    str,
    pattern=METRIC_NAME_PATTERN,
    description="A metric's name: only that metric's points (not the model's name, which is the path's `{name}`).",
)
METRIC_SOURCE_PARAMETER = OpenApiParameter(
    "source", str, pattern=SOURCE_PATTERN, description="Only points from this source (eval, canary, registration...)."
)


class VersionMetricsViewSet(IdempotentPostsMixin, viewsets.GenericViewSet):
    """A version's metric history: the work is in models_app.metric_history. Recording needs
    change_modelversion and reading view_modelversion (the read rule): see permission_model."""

    queryset = MetricPoint.objects.all()
    permission_model = ModelVersion  # reading points views the version, recording one changes it
    serializer_class = MetricPointSerializer
    pagination_class = MetricPointPagination
    action_verbs = {"record": "change"}
    model_kwarg = "name"  # a token's model pattern applies to the URL's model (registry_site.permissions)

    @property
    def filterset_class(self):
        return MetricSummaryFilter if getattr(self, "action", None) == "summary" else MetricPointFilter

    def _points(self) -> QuerySet[MetricPoint]:
        # Parameters first, strictly (unknown, empty or repeated ones are a 400), then the version.
        points = self.filter_queryset(self.get_queryset())
        version = selectors.get_version(self.kwargs["name"], self.kwargs["version"])
        return points.filter(version_id=version.pk)

    @extend_schema(
        request={"application/json": MetricBatchSerializer},
        responses={201: MetricsRecordedSerializer},
        description=RECORD_HELP,
        examples=[
            OpenApiExample("One point", value={"name": "accuracy", "value": 0.93, "source": "canary"}),
            OpenApiExample("A batch", value={"points": [{"name": "loss", "value": 0.31, "step": 100}]}),
        ],
    )
    def record(self, request: Request, *args, **kwargs) -> Response:
        body = request.data
        items = metric_history.points_from_body(body)
        batch = not (isinstance(body, dict) and "points" not in body)
        recorded = metric_history.record_points(
            version=selectors.get_version(self.kwargs["name"], self.kwargs["version"]), points=items, batch=batch
        )
        return Response({"recorded": recorded}, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[METRIC_NAME_PARAMETER, METRIC_SOURCE_PARAMETER],
        description="The version's points, newest first, a cursor page at a time.",
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        page = self.paginate_queryset(self._points())
        return self.get_paginated_response(MetricPointSerializer(page, many=True).data)

    @property
    def paginator(self):
        # A summary is one answer, not pages: `cursor` and `page_size` are then unknown parameters (a 400).
        return None if getattr(self, "action", None) == "summary" else super().paginator

    @extend_schema(
        parameters=[
            OpenApiParameter("bucket", str, enum=[*metric_history.BUCKETS], default="1d", description="In UTC."),
            OpenApiParameter("agg", str, enum=[*metric_history.AGGREGATES], default="avg"),
            METRIC_NAME_PARAMETER,
            METRIC_SOURCE_PARAMETER,
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Points at or after this time."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Points before this time."),
        ],
        responses=MetricSummarySerializer,
        description="The version's points in buckets of time (`bucket`, in UTC) per name and source, each "
        "bucket's value aggregated by `agg`, for charts; filtered like the list. One answer, not paginated "
        "(`cursor` and `page_size` are a 400). More than 10,000 buckets is a 400 (narrow it with since, until "
        "or name).",
    )
    def summary(self, request: Request, *args, **kwargs) -> Response:
        self._points()  # the parameters, strictly (a 400 naming the one at fault), and the version (a 404)
        filters = MetricSummaryFilter(request.query_params)
        filters.is_valid()  # valid: _points checked it
        version = selectors.get_version(self.kwargs["name"], self.kwargs["version"])
        data = metric_history.summary_of(version=version, filters=filters.form.cleaned_data)
        return Response(MetricSummarySerializer(data).data)
