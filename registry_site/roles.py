"""The four roles, as Django groups with permissions. Made by registry_site's 0002 migration and made
again by `create_token --role` if someone removed one."""

from __future__ import annotations

VIEW = [
    "models_app.view_registeredmodel",
    "models_app.view_modelversion",
    "models_app.view_artifact",
    "deployments_app.view_deployment",
]
EDIT = [
    f"models_app.{verb}_{model}"
    for verb in ("add", "change", "delete")
    for model in ("registeredmodel", "modelversion")
]
ROLES: dict[str, list[str] | None] = {
    "viewer": VIEW,
    # Editors register and change models and versions, and deploy to targets other than production.
    "editor": VIEW + EDIT + ["deployments_app.add_deployment"],
    # Deployers decide what runs: deploy anywhere, production included, and roll back.
    "deployer": VIEW
    + ["deployments_app.add_deployment", "deployments_app.rollback_deployment", "deployments_app.deploy_to_production"],
    "admin": None,  # every permission of the registry's apps, and seeing users (to give them tokens)
}
ADMIN_EXTRA = ["auth.view_user"]
APPS = ("models_app", "deployments_app", "registry_site")


def ensure_roles(Group, Permission) -> None:
    """Create or reset the role groups. Takes the model classes so a migration can pass its historical
    ones; the permissions must exist already."""
    for role, names in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        if names is None:
            perms = list(Permission.objects.filter(content_type__app_label__in=APPS))
            perms += [
                Permission.objects.get(content_type__app_label=name.split(".")[0], codename=name.split(".")[1])
                for name in ADMIN_EXTRA
            ]
        else:
            perms = [
                Permission.objects.get(content_type__app_label=name.split(".")[0], codename=name.split(".")[1])
                for name in names
            ]
        group.permissions.set(perms)
