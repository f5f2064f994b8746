"""The shared cache's table (throttle counters), and the four roles as Django groups."""
from django.contrib.auth.management import create_permissions
from django.core.management import call_command
from django.db import migrations

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
ROLES = {
    "viewer": VIEW,
    # Editors register and change models and versions, and deploy to targets other than production.
    "editor": VIEW + EDIT + ["deployments_app.add_deployment"],
    # Deployers decide what runs: deploy anywhere, production included, and roll back.
    "deployer": VIEW + [
        "deployments_app.add_deployment",
        "deployments_app.rollback_deployment",
        "deployments_app.deploy_to_production",
    ],
    "admin": None,  # every permission of the registry's apps
}
APPS = ("models_app", "deployments_app", "registry_site")


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; the roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        if names is None:
            perms = Permission.objects.filter(content_type__app_label__in=APPS)
        else:
            perms = [
                Permission.objects.get(content_type__app_label=name.split(".")[0], codename=name.split(".")[1])
                for name in names
            ]
        group.permissions.set(perms)


def make_audit_append_only(apps, schema_editor):
    """Audit events are append-only; on PostgreSQL the database itself refuses to change them."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        """
        CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION 'audit events are append-only';
        END;
        $$ LANGUAGE plpgsql;
        CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
        """
    )


class Migration(migrations.Migration):
    dependencies = [
        ("registry_site", "0001_initial"),
        ("models_app", "0001_initial"),
        ("deployments_app", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_cache_table, migrations.RunPython.noop),
        migrations.RunPython(create_roles, migrations.RunPython.noop),
        migrations.RunPython(make_audit_append_only, migrations.RunPython.noop),
    ]

