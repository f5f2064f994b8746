from django.db import migrations, models

# The index Django made for the foreign key on its own (the same name on SQLite and PostgreSQL).
FK_INDEX = "model_versions_model_id_e9dcc3e7"


class Migration(migrations.Migration):
    """A version's model keeps no index of its own (see ModelVersion.model). Dropped by name: Django's
    AlterField would also drop, on PostgreSQL, every other index on that one column, the partial unique
    index that allows one default per model among them (it only spares the indexes in Meta.indexes), and
    on SQLite would copy the whole table."""

    dependencies = [
        ("models_app", "0009_metric_rollups"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="modelversion",
                    name="model",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="versions",
                        to="models_app.registeredmodel",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {FK_INDEX}",
                    reverse_sql=f"CREATE INDEX {FK_INDEX} ON model_versions (model_id)",
                ),
            ],
        ),
    ]
