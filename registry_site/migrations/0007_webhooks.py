"""Signed webhooks (issue #10 §6): subscriptions, the outbox of deliveries and their attempt log."""


import django.core.validators
import django.db.models.deletion
import django.utils.timezone
import registry_site.validators
from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def grant_webhook_permissions(apps, schema_editor):
    """The admin role holds every permission of the registry's apps (registry_site.roles): add (not
    reset: an operator may have changed the groups) those of the webhook tables."""
    app_config = apps.get_app_config("registry_site")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = Permission.objects.filter(
        content_type__app_label="registry_site",
        content_type__model__in=["webhooksubscription", "webhookdelivery", "webhookattempt"],
    )
    for group in Group.objects.filter(name="admin"):
        group.permissions.add(*perms)


class Migration(migrations.Migration):

    dependencies = [
        ('registry_site', '0006_token_scopes'),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('message_id', models.CharField(max_length=40, unique=True)),
                ('event_type', models.CharField(max_length=64)),
                ('ordering_key', models.CharField(help_text='Deliveries with the same key (a model) go out one at a time, oldest first.', max_length=160)),
                ('body', models.TextField()),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Delivered'), ('failed', 'Failed')], default='pending', max_length=16)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('claimed_until', models.DateTimeField(blank=True, null=True)),
                ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'verbose_name_plural': 'webhook deliveries',
                'db_table': 'registry_webhook_deliveries',
                'ordering': ['-id'],
            },
        ),
        migrations.CreateModel(
            name='WebhookSubscription',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.URLField(help_text='Where the events are POSTed (http or https).', max_length=2000, validators=[django.core.validators.URLValidator(schemes=['http', 'https'])])),
                ('description', models.CharField(blank=True, default='', max_length=200)),
                ('secret', models.CharField(help_text='whsec_ followed by the base64 of 24 to 64 random bytes (Standard Webhooks).', max_length=200, validators=[registry_site.validators.validate_webhook_secret])),
                ('events', models.JSONField(help_text='Event types (e.g. ["version.created", "deployment.created"]) or ["*"].', validators=[registry_site.validators.validate_webhook_events])),
                ('model_filter', models.CharField(blank=True, default='', help_text="Only models whose name matches this glob (e.g. 'fraud-*').", max_length=128, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9_.\\-*?]{0,128}$(?!\\n)', "A model pattern is 1-128 ASCII letters, digits, '_', '-' or '.', with '*' for any run of characters and '?' for one.", code='model_pattern')])),
                ('enabled', models.BooleanField(default=True)),
                ('consecutive_failures', models.PositiveIntegerField(default=0, editable=False)),
                ('failing_since', models.DateTimeField(blank=True, editable=False, null=True)),
                ('disabled_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('disabled_reason', models.CharField(blank=True, default='', editable=False, max_length=255)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'webhook subscription',
                'db_table': 'registry_webhook_subscriptions',
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='WebhookAttempt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveIntegerField()),
                ('at', models.DateTimeField(default=django.utils.timezone.now)),
                ('status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('latency_ms', models.PositiveIntegerField(default=0)),
                ('response_excerpt', models.TextField(blank=True, default='')),
                ('error', models.CharField(blank=True, default='', max_length=500)),
                ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_log', to='registry_site.webhookdelivery')),
            ],
            options={
                'db_table': 'registry_webhook_attempts',
                'ordering': ['-id'],
            },
        ),
        migrations.AddField(
            model_name='webhookdelivery',
            name='subscription',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='registry_site.webhooksubscription'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['status', 'next_attempt_at'], name='webhook_delivery_due'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['subscription', 'ordering_key', 'status'], name='webhook_delivery_order'),
        ),
        migrations.RunPython(grant_webhook_permissions, migrations.RunPython.noop),
    ]
