"""A version without a file can no longer be the default (GET .../versions/default/file must serve a file).

Before the check constraint goes on, a model whose default has no file gets as default its newest
version that has one and is not archived, or none if it has no such version (as a model with no
versions has none)."""

from django.db import migrations, models


def move_defaults_to_versions_with_files(apps, schema_editor):
    ModelVersion = apps.get_model("models_app", "ModelVersion")
    for fileless in ModelVersion.objects.filter(is_default=True, artifact__isnull=True):
        fileless.is_default = False
        fileless.save(update_fields=["is_default"])
        heir = (
            ModelVersion.objects.filter(model_id=fileless.model_id, artifact__isnull=False)
            .exclude(status="archived")
            .order_by("-created_at", "-id")
            .first()
        )
        if heir is not None:
            heir.is_default = True
            heir.save(update_fields=["is_default"])


class Migration(migrations.Migration):
    dependencies = [
        ("models_app", "0002_field_rules"),
    ]

    operations = [
        migrations.RunPython(move_defaults_to_versions_with_files, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="modelversion",
            constraint=models.CheckConstraint(
                condition=models.Q(("artifact__isnull", True), ("is_default", True), _negated=True),
                name="model_versions_default_has_file",
            ),
        ),
    ]
