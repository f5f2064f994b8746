"""What the registry prepares when it starts (registry_site.apps, for every process: manage.py, gunicorn's
workers, the tests) rather than when its settings are read: the folders it writes to, and in local mode
the generated secret key it keeps beside its data."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings


def prepare() -> None:
    for folder in (settings.DATA_DIR, settings.FILE_UPLOAD_TEMP_DIR, settings.STATIC_ROOT):
        # The SQLite file's folder; where uploads are staged (Django's files.E001 check wants it); and
        # where collectstatic writes (whitenoise warns at every start when it is missing).
        Path(folder).mkdir(parents=True, exist_ok=True)
    if settings.LOCAL_SECRET_KEY_FILE is not None:
        settings.SECRET_KEY = local_secret_key(Path(settings.LOCAL_SECRET_KEY_FILE))


def local_secret_key(path: Path) -> str:
    """The key in `path`, written there first if there is none. Workers starting together agree: the
    key is written to a private temporary file and linked into place, and whoever links first wins."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process was first: use its key
    finally:
        draft.unlink()
    return path.read_text().strip()
