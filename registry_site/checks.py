"""System checks (`manage.py check`, run before migrate and runserver) for what settings alone cannot
promise."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import import_string

from registry_site.storage import ArtifactStorage

ARTIFACT_OPERATIONS = [name for name in vars(ArtifactStorage) if not name.startswith("_")]


@register()
def check_artifact_storage(app_configs, **kwargs) -> list[Error]:
    """The artifact storage must be one of registry_site.storage's classes (or offer what they offer):
    Django's FileSystemStorage or S3Storage alone would fail at the first upload."""
    backend_path: str = settings.STORAGES["default"]["BACKEND"]  # type: ignore[index]
    backend = import_string(backend_path)
    missing = [name for name in ARTIFACT_OPERATIONS if not callable(getattr(backend, name, None))]
    if not missing:
        return []
    return [
        Error(
            f"STORAGES['default'] is {backend_path}, which lacks {', '.join(missing)}.",
            hint="Use registry_site.storage.LocalArtifactStorage or registry_site.storage.S3ArtifactStorage.",
            id="registry_site.E001",
        )
    ]
