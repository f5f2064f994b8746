"""Deployment targets as a table (issue #10): `staging` and `production` (protected), plus a target for
every name the deployment history already uses, folded to lower case so `Production` and `production`
become one target. Existing rows are rewritten to their target's name; where that would leave a model
with two active deployments on one target (one under each spelling), the most recent stays active and
the others are marked superseded, as a deploy would have done. Then the column becomes a foreign key to
the target's name, so the database refuses a deployment to an unknown target.

The role groups get the new permissions: every role may see targets, the admin role may change them."""

import django.core.validators
import django.db.models.deletion
import django.db.models.functions.text
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

DEFAULT_TARGETS = [
    ("staging", "Pre-production: try a version here first.", False, 10),
    ("production", "What serves users. Deploying here needs the deployer role.", True, 20),
]
SEEN_ORDER = 100  # targets found in the history come after the two above


def create_targets(apps, schema_editor):
    Target = apps.get_model("deployments_app", "Target")
    Deployment = apps.get_model("deployments_app", "Deployment")
    for name, description, protected, order in DEFAULT_TARGETS:
        Target.objects.get_or_create(
            name=name, defaults={"description": description, "protected": protected, "display_order": order}
        )
    spellings = sorted(set(Deployment.objects.order_by().values_list("deployment_target", flat=True).distinct()))
    for spelling in spellings:
        folded = spelling.lower()
        Target.objects.get_or_create(name=folded, defaults={"display_order": SEEN_ORDER})
        if spelling == folded:
            continue
        # One active deployment per model on the folded target: keep the newest active.
        for model_id in (
            Deployment.objects.filter(deployment_target=spelling, deployment_status="active")
            .values_list("model_id", flat=True)
        ):
            active = Deployment.objects.filter(
                model_id=model_id, deployment_target__in=[s for s in spellings if s.lower() == folded],
                deployment_status="active",
            ).order_by("-deployed_at", "-id")
            newest = active.first()
            active.exclude(pk=newest.pk).update(deployment_status="superseded")
        Deployment.objects.filter(deployment_target=spelling).update(deployment_target=folded)
    if schema_editor.connection.vendor == "postgresql":
        # Check the updated rows' deferred foreign keys now: ALTER TABLE refuses a table with pending
        # trigger events.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def grant_target_permissions(apps, schema_editor):
    """Add (not reset: an operator may have changed the groups) what the roles need for targets."""
    app_config = apps.get_app_config("deployments_app")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="deployments_app", codename="deploy_to_production").update(
        name="Can deploy to protected targets (such as production)"
    )
    perms = {
        p.codename: p
        for p in Permission.objects.filter(
            content_type__app_label="deployments_app", content_type__model="target"
        )
    }
    for group in Group.objects.filter(name__in=["viewer", "editor", "deployer", "admin"]):
        group.permissions.add(perms["view_target"])
        if group.name == "admin":
            group.permissions.add(perms["add_target"], perms["change_target"], perms["delete_target"])



class Migration(migrations.Migration):

    dependencies = [
        ('deployments_app', '0004_targets_not_starting_with_a_dash'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='deployment',
            options={'ordering': ['-id'], 'permissions': [('rollback_deployment', 'Can roll back a deployment'), ('deploy_to_production', 'Can deploy to protected targets (such as production)')]},
        ),
        migrations.CreateModel(
            name='Target',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=64, unique=True, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9_][A-Za-z0-9_.\\-]{0,63}$(?!\\n)', "Use 1-64 ASCII letters, digits, '_', '-' or '.', not starting with a dot or a dash.")])),
                ('description', models.TextField(blank=True, default='', max_length=2000, validators=[django.core.validators.MaxLengthValidator(2000)])),
                ('protected', models.BooleanField(default=False, help_text='Deploying here needs the deployer role (deployments_app.deploy_to_production).')),
                ('display_order', models.PositiveIntegerField(default=100, help_text='Lists show targets by this number, then by name.')),
            ],
            options={
                'db_table': 'deployment_targets',
                'ordering': ['display_order', 'name'],
                'constraints': [models.UniqueConstraint(django.db.models.functions.text.Lower('name'), name='deployment_targets_name_unique_ignoring_case', violation_error_message='A target with this name (ignoring case) already exists.')],
            },
        ),
        migrations.RunPython(create_targets, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='deployment',
            name='deployment_target',
            field=models.ForeignKey(db_column='deployment_target', on_delete=django.db.models.deletion.PROTECT, related_name='deployments', to='deployments_app.target', to_field='name'),
        ),
        migrations.RunPython(grant_target_permissions, migrations.RunPython.noop),
    ]
