"""What the OpenAPI schema says that drf-spectacular cannot guess: our authentication, the error answers
every operation can give, the strictness of the query parameters, and when no token is needed.
tests/test_schema_fuzz.py holds the server to it (schemathesis, every check)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter

from registry_site import idempotency

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    idempotency.HEADER,
    type=idempotency.KEY_SCHEMA,
    location=OpenApiParameter.HEADER,
    required=False,
    description=idempotency.KEY_DESCRIPTION,
)


class RegistryAutoSchema(AutoSchema):
    """drf-spectacular's, plus the Idempotency-Key header on the POST operations of the viewsets that
    honour it (registry_site.idempotency.IdempotentPostsMixin)."""

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "POST" and isinstance(self.view, idempotency.IdempotentPostsMixin):
            parameters.append(IDEMPOTENCY_KEY_PARAMETER)
        return parameters


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "registry_site.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from `manage.py create_token` or the admin (production mode). A "
            "request may do what both the token's scope (read, write, deploy to all or named targets, admin; "
            "optionally only models matching a pattern) and its user's roles allow; anything else is a 403 "
            "saying which of the two refused.",
        }


ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error: one sentence, and the problems per field when they belong to fields.",
    "properties": {
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
    "required": ["detail"],
}

NO_NUL_PATTERN = "^[^\\x00]*$"
# What registry_site.filters.UtcIsoDateTimeField accepts: no time zone is more than 14 hours from UTC.
DATE_TIME_PATTERN = "([zZ]|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)$"

# Status: why; "body" = only operations that take a request body.
ERRORS_OF_EVERY_OPERATION = {
    "400": "Invalid input: a field, a query parameter (unknown, empty, repeated or out of range) or a header.",
    "401": "A missing (production mode), malformed, unknown, expired or revoked token.",
    "403": "The token's user lacks the role; or a write sent by a web page of an origin that is not allowed.",
    "404": "No such model, version, deployment or event (or it was deleted meanwhile); an invalid cursor.",
    "429": "Too many writes, or too many failed tokens from this address; see Retry-After.",
}
ERRORS_OF_WRITES = {
    "409": "The registry's state forbids it: exists already, is the default, is deployed, is archived...",
}
ERRORS_OF_BODIES = {
    "408": "The request body arrived too slowly.",
    "413": "The request body (or file) is larger than this registry accepts.",
    "415": "A body that is neither JSON nor (where the operation takes one) multipart/form-data or a raw file.",
}
ERRORS_OF_UPLOADS = {"507": "The registry's storage is full; nothing was stored."}
ERRORS_OF_IDEMPOTENCY_KEYS = {
    "409": "The registry's state forbids it (exists already with other content, is archived...); or a request "
    "with the same Idempotency-Key is still being handled.",
    "422": "The Idempotency-Key was already used for another request (another body or query) to this operation.",
}
REPLAYED_HEADER = {
    idempotency.REPLAYED_HEADER: {
        "description": "`true` when this is the recorded answer to an earlier request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _strict_query_parameter(parameter: dict) -> None:
    """StrictFilterBackend and the pagination refuse an empty value (except the opaque cursor) and a page
    size below 1; django-filter's booleans are words, not JSON booleans."""
    schema = parameter.setdefault("schema", {})
    if parameter["name"] == "cursor":
        return
    if parameter["name"] == "page_size":
        schema["minimum"] = 1
        parameter["description"] = "Items per page, from 1; 50 if not given, and at most 500 (more is read as 500)."
        return
    if schema.get("type") == "boolean" and schema.get("enum"):
        schema["type"] = "string"
    if schema.get("format") == "date-time":
        schema["pattern"] = DATE_TIME_PATTERN
        parameter["description"] = "ISO 8601 date and time, with a UTC offset from -14:00 to +14:00 (or Z)."
    elif schema.get("type") == "string" and "enum" not in schema:
        schema["minLength"] = 1
        schema.setdefault("pattern", NO_NUL_PATTERN)  # a parameter's own pattern (?ordering=) says more


def _no_nul_in_strings(component: dict) -> None:
    """Django's CharField refuses a NUL character (PostgreSQL cannot store one): say so."""
    for field in component.get("properties", {}).values():
        if field.get("type") == "string" and not (field.keys() & {"enum", "pattern", "format"}):
            field["pattern"] = NO_NUL_PATTERN


def document_errors(result: dict, generator, request, public) -> dict:
    """A drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    for name, component in components.items():
        if name.endswith("Request"):  # request bodies (COMPONENT_SPLIT_REQUEST): StrictFieldsMixin
            component["additionalProperties"] = False
            _no_nul_in_strings(component)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            errors = dict(ERRORS_OF_EVERY_OPERATION)
            if method in ("post", "put", "patch", "delete"):
                errors.update(ERRORS_OF_WRITES)
            takes_key = any(
                parameter.get("in") == "header" and parameter.get("name") == idempotency.HEADER
                for parameter in operation.get("parameters", [])
            )
            if takes_key:
                errors.update(ERRORS_OF_IDEMPOTENCY_KEYS)
                for status_code, response in responses.items():
                    if str(status_code).startswith("2") and isinstance(response, dict):
                        response.setdefault("headers", {}).update(REPLAYED_HEADER)
            if "requestBody" in operation:
                errors.update(ERRORS_OF_BODIES)
                content = operation["requestBody"].get("content", {})
                if "multipart/form-data" in content or "application/octet-stream" in content:
                    errors.update(ERRORS_OF_UPLOADS)
            for status_code, description in errors.items():
                if not responses.get(status_code):  # absent, or declared without a body (None)
                    responses[status_code] = _error(description)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    _strict_query_parameter(parameter)
            if _open_without_token(path, method):
                security = operation.setdefault("security", [])
                if {} not in security:
                    security.append({})
    return result


def _open_without_token(path: str, method: str) -> bool:
    """Local mode needs no token; production lets reads through without one when REGISTRY_PUBLIC_READ is
    set (never the audit trail)."""
    if settings.LOCAL_MODE:
        return True
    return settings.REGISTRY_PUBLIC_READ and method == "get" and not path.startswith("/audit")
