"""The one policy (registry_site.permissions): every API action's permission is derived from its model
and method or declared beside its view, and names a permission that exists; the shell's operator may do
anything; an anonymous caller only in local mode."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Permission
from rest_framework.test import APIRequestFactory

from registry_site.permissions import (
    DEPLOY_TO_PROTECTED,
    UNDECLARED,
    Operator,
    allows,
    may_deploy_to,
    required_permissions,
)
from tests.test_write_routes_require_auth import api_routes

pytestmark = pytest.mark.django_db


def every_action():
    for route in api_routes():
        for method, action in getattr(route.callback, "actions", {}).items():
            yield route, method, action


def test_every_api_action_needs_an_existing_permission():
    existing = {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")}
    factory = APIRequestFactory()
    seen = {}
    for route, method, action in every_action():
        view = route.callback.cls(action=action, action_map=route.callback.actions)
        request = view.initialize_request(getattr(factory, method)("/"))
        needed = required_permissions(request, view)
        assert UNDECLARED not in needed, (route.route, method)
        assert set(needed) <= existing, (route.route, method, needed)
        seen[(route.route, method)] = needed
    # Spot checks of the derivation and of the declared verbs.
    assert seen[("models", "post")] == ["models_app.add_registeredmodel"]
    assert seen[("models/<segment:name>/versions/<segment:version>/file", "put")] == ["models_app.change_modelversion"]
    assert seen[("models/<segment:name>/versions/<segment:version>/default", "post")] == [
        "models_app.change_modelversion"
    ]
    assert seen[("deploy", "post")] == ["deployments_app.add_deployment"]
    assert seen[("deployments/<int:pk>/rollback", "post")] == ["deployments_app.rollback_deployment"]
    assert seen[("audit", "get")] == ["registry_site.view_auditevent"]
    assert seen[("targets", "get")] == ["deployments_app.view_target"]
    assert seen[("targets", "post")] == ["deployments_app.add_target"]
    assert seen[("targets/<segment:name>", "patch")] == ["deployments_app.change_target"]
    assert seen[("targets/<segment:name>", "delete")] == ["deployments_app.delete_target"]
    assert seen[("models/<segment:name>/targets", "get")] == ["deployments_app.view_deployment"]
    assert seen[("models/<segment:name>/targets/<segment:target>/rollback", "post")] == [
        "deployments_app.rollback_deployment"
    ]


def test_a_method_the_policy_does_not_map_is_closed_but_to_superusers(admin_user, django_user_model):
    route = next(r for r in api_routes() if r.route == "models")
    view = route.callback.cls(action=None, action_map=route.callback.actions)
    request = view.initialize_request(APIRequestFactory().options("/"))
    assert required_permissions(request, view) == [UNDECLARED]
    assert allows(admin_user, UNDECLARED)
    assert not allows(django_user_model.objects.create_user("someone"), UNDECLARED)


def test_the_shell_operator_may_do_anything_and_anonymous_only_in_local_mode(settings):
    assert allows(Operator(), DEPLOY_TO_PROTECTED)
    settings.LOCAL_MODE = True
    assert allows(AnonymousUser(), DEPLOY_TO_PROTECTED)
    settings.LOCAL_MODE = False
    assert not allows(AnonymousUser(), DEPLOY_TO_PROTECTED)


def test_a_protected_target_needs_the_deployer_permission_and_an_unprotected_one_does_not(settings, persona):
    settings.LOCAL_MODE = False
    for role, may in (("viewer", False), ("editor", False), ("deployer", True), ("admin", True)):
        user = persona(role).user
        assert may_deploy_to(user, target="production", protected=True) is may, role
        assert may_deploy_to(user, target="staging", protected=False)
    assert may_deploy_to(Operator(), target="production", protected=True)
    assert not may_deploy_to(AnonymousUser(), target="production", protected=True)
