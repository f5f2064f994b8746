"""The four roles, as Django groups with permissions. Made by registry_site's 0002 migration and made
again by `grant_role` if someone removed one. A user's roles are given and taken here (`manage.py
grant_role`) or on the admin's user page; never by making a token, which only narrows them."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from registry_site import audit
from registry_site.errors import InvalidInput

VIEW = [
    "models_app.view_registeredmodel",
    "models_app.view_modelversion",
    "models_app.view_artifact",
    "deployments_app.view_deployment",
    "deployments_app.view_target",
    "deployments_app.view_experiment",
    "deployments_app.view_promotionpolicy",
    "deployments_app.view_approval",
    "deployments_app.view_alertrule",
    "deployments_app.view_alert",
]
EDIT = [
    f"models_app.{verb}_{model}"
    for verb in ("add", "change", "delete")
    for model in ("registeredmodel", "modelversion")
]
ROLES: dict[str, list[str] | None] = {
    "viewer": VIEW,
    # Editors register and change models and versions, and deploy to targets that are not protected.
    "editor": VIEW + EDIT + ["deployments_app.add_deployment"],
    # Deployers decide what runs: deploy anywhere, protected targets (production) included, and roll back.
    "deployer": VIEW
    + [
        "deployments_app.add_deployment",
        "deployments_app.rollback_deployment",
        "deployments_app.deploy_to_production",
        # Approving a version for a target (a promotion policy's four-eyes rule counts these).
        "deployments_app.add_approval",
    ]
    # ... and run A/B tests there (issue #11): a serving system's token reports results with this role too.
    + [f"deployments_app.{verb}_experiment" for verb in ("add", "change", "conclude", "report")]
    # ... and watch what runs (issue #9 §4): alert rules, which may roll back or pause, and acknowledging alerts.
    + [f"deployments_app.{verb}_alertrule" for verb in ("add", "change", "delete")]
    + ["deployments_app.acknowledge_alert"],
    "admin": None,  # every permission of the registry's apps, and seeing users (to give them tokens)
}
ADMIN_EXTRA = ["auth.view_user"]
# Permissions of models made after the roles were (deployments_app's 0005 to 0008 grant them themselves).
LATER_PERMISSIONS = {
    "view_target",
    "view_promotionpolicy",
    "view_approval",
    "add_approval",
    "view_experiment",
    "add_experiment",
    "change_experiment",
    "conclude_experiment",
    "report_experiment",
    "view_alertrule",
    "add_alertrule",
    "change_alertrule",
    "delete_alertrule",
    "view_alert",
    "acknowledge_alert",
}
APPS = ("models_app", "deployments_app", "registry_site")


def ensure_roles(Group, Permission) -> None:
    """Create or reset the role groups. Takes the model classes so a migration can pass its historical
    ones; the permissions must exist already, except those of a model that a later migration creates
    (registry_site's 0002 runs before deployments_app's 0005 makes targets): that migration grants them."""
    for role, names in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        if names is None:
            perms = list(Permission.objects.filter(content_type__app_label__in=APPS))
            perms += [
                Permission.objects.get(content_type__app_label=name.split(".")[0], codename=name.split(".")[1])
                for name in ADMIN_EXTRA
            ]
        else:
            perms = []
            for name in names:
                app_label, codename = name.split(".")
                found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
                if found is None and codename not in LATER_PERMISSIONS:
                    raise Permission.DoesNotExist(f"Permission {name} does not exist.")
                if found is not None:
                    perms.append(found)
        group.permissions.set(perms)


@transaction.atomic
def grant_role(*, user, role: str, revoke: bool = False) -> bool:
    """Put `user` in `role`'s group (or take them out of it, with `revoke`), remaking the groups if one
    was removed. Every token of the user gains or loses what the role allows at once, within each
    token's own scope. Returns False when the user had that role already (had it not, with `revoke`):
    nothing changes then, and nothing is audited."""
    if role not in ROLES:
        raise InvalidInput(f"Unknown role '{role}'; the roles are: {', '.join(ROLES)}.", field="role")
    if not Group.objects.filter(name=role).exists():
        ensure_roles(Group, Permission)
    group = Group.objects.get(name=role)
    if user.groups.filter(pk=group.pk).exists() != revoke:
        return False
    (user.groups.remove if revoke else user.groups.add)(group)
    audit.record(
        "revoke_role" if revoke else "grant_role",
        object_type="user",
        object_repr=user.get_username(),
        changes={"role": role},
    )
    return True
