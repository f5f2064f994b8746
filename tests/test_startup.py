"""Reading the settings writes nothing; the registry prepares its folders, its local-mode secret key and
its static files when it starts (registry_site.startup, registry_site.storage), in a fresh data folder as
`make run` and the Docker entrypoint meet it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.live import ROOT

# Every start here is a child process on a SQLite file in its own data folder.
pytestmark = pytest.mark.own_sqlite

SHOW_KEY = "from django.conf import settings; print(settings.SECRET_KEY)"


def run(args: list[str], data_dir, **env: str) -> subprocess.CompletedProcess:
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith(("REGISTRY_", "DJANGO_", "DATABASE_URL"))
    }
    environ.update(REGISTRY_DATA_DIR=str(data_dir), DATABASE_URL=f"sqlite:///{data_dir}.sqlite3", **env)
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_reading_the_settings_creates_nothing(tmp_path):
    data_dir = tmp_path / "data"
    run(["-c", "import registry_site.settings"], data_dir)
    assert not data_dir.exists()


def test_the_first_start_prepares_the_data_folder_and_later_ones_keep_its_key(tmp_path):
    data_dir = tmp_path / "data"
    first = last_line(run(["manage.py", "shell", "-c", SHOW_KEY], data_dir))

    key_file = data_dir / ".secret_key"
    assert key_file.read_text() == first and len(first) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (data_dir / "staticfiles").is_dir() and (data_dir / "storage" / ".incoming").is_dir()
    assert last_line(run(["manage.py", "shell", "-c", SHOW_KEY], data_dir)) == first


def test_workers_starting_together_agree_on_the_key(tmp_path):
    data_dir = tmp_path / "data"
    with ThreadPoolExecutor(4) as pool:
        keys = set(pool.map(lambda _: last_line(run(["manage.py", "shell", "-c", SHOW_KEY], data_dir)), range(4)))
    assert keys == {(data_dir / ".secret_key").read_text()}
    assert sorted(p.name for p in data_dir.iterdir()) == [".secret_key", "staticfiles", "storage"]


def test_static_files_are_cache_busted_once_collected(tmp_path):
    data_dir = tmp_path / "data"
    show = "from django.templatetags.static import static; print(static('registry/admin.css'))"
    assert last_line(run(["manage.py", "shell", "-c", show], data_dir)) == "/static/registry/admin.css"

    run(["manage.py", "collectstatic", "--noinput", "--verbosity", "0"], data_dir)

    hashed = last_line(run(["manage.py", "shell", "-c", show], data_dir))
    assert hashed.startswith("/static/registry/admin.") and hashed != "/static/registry/admin.css"
    assert (data_dir / "staticfiles" / hashed.removeprefix("/static/")).is_file()
