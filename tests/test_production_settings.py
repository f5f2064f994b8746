"""Production settings and the server's start: `check --deploy` is clean with the documented
environment, the secret key is required (or read from a file), and gunicorn refuses to serve the open
local mode on a non-loopback address unless told to, warning loudly when it runs in local mode."""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.live import GUNICORN, ROOT, free_port, running_registry, stop

CHECK = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]


def random_secret(length: int = 60) -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def clean_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without anything registry-specific, plus `overrides`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REGISTRY_", "DJANGO_", "DATABASE_", "GUNICORN_", "WEB_CONCURRENCY"))
    }
    env.update(overrides)
    return env


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    return clean_env(
        REGISTRY_ENV="production",
        DJANGO_SECRET_KEY=random_secret(),
        REGISTRY_ALLOWED_HOSTS="registry.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path}/x.sqlite3",
        REGISTRY_DATA_DIR=str(tmp_path),
    )


def run(cmd, env, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# --- manage.py check --deploy --------------------------------------------------------------------------
@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_check_deploy_is_clean_with_the_documented_environment(production_env):
    result = run(CHECK, production_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_check_deploy_raises_no_security_warning(production_env):
    """Django's own deployment checks (security.*) are clean."""
    result = run(CHECK, production_env)
    output = result.stdout + result.stderr
    assert "security." not in output, output
    assert "(2 silenced)" in output  # W005 and W021, each explained in settings.py


@pytest.mark.subprocess
# Fixed ids: xdist's workers must collect the same test names, and random_secret differs per process.
@pytest.mark.parametrize(
    "key",
    ["short", "k" * 80, "abcd" * 20, random_secret(49)],
    ids=["short", "one-character", "four-characters", "49-random"],
)
@pytest.mark.own_sqlite
def test_production_refuses_to_start_with_a_weak_secret_key(production_env, key):
    """Not left to `check --deploy` (security.W009), which nothing makes anyone run: every command and
    every worker refuses to start."""
    for command in (CHECK[:3], [sys.executable, "manage.py", "migrate", "--noinput"]):
        result = run(command, {**production_env, "DJANGO_SECRET_KEY": key})
        assert result.returncode != 0
        assert "DJANGO_SECRET_KEY must be at least 50 random characters in production" in result.stderr


@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_a_key_of_50_random_characters_is_enough(production_env):
    result = run(CHECK, {**production_env, "DJANGO_SECRET_KEY": random_secret(50)})
    assert result.returncode == 0, result.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize("debug", ["true", "1", "yes"])
@pytest.mark.own_sqlite
def test_production_refuses_to_start_with_debug(production_env, debug):
    result = run(CHECK[:3], {**production_env, "DJANGO_DEBUG": debug})
    assert result.returncode != 0
    assert "DJANGO_DEBUG=true is refused in production" in result.stderr


@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_local_mode_may_debug_with_any_key(tmp_path):
    env = clean_env(
        DJANGO_DEBUG="true",
        DJANGO_SECRET_KEY="short",
        REGISTRY_DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path}/x.sqlite3",
    )
    result = run(CHECK[:3], env)
    assert result.returncode == 0, result.stderr


@pytest.mark.gunicorn
@pytest.mark.own_sqlite
def test_gunicorn_refuses_to_serve_production_with_debug(tmp_path):
    env = gunicorn_env(
        tmp_path,
        f"127.0.0.1:{free_port()}",
        REGISTRY_ENV="production",
        DJANGO_DEBUG="true",
        DJANGO_SECRET_KEY=random_secret(),
        REGISTRY_ALLOWED_HOSTS="registry.example.com",
    )
    result = subprocess.run(GUNICORN, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DJANGO_DEBUG=true is refused in production" in result.stdout + result.stderr


@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_production_settings_are_secure(production_env):
    code = (
        "from django.conf import settings as s; import json; print(json.dumps({"
        "'debug': s.DEBUG, 'proxy': list(s.SECURE_PROXY_SSL_HEADER or ()), 'ssl': s.SECURE_SSL_REDIRECT,"
        "'session': s.SESSION_COOKIE_SECURE, 'csrf': s.CSRF_COOKIE_SECURE, 'hsts': s.SECURE_HSTS_SECONDS,"
        "'hosts': s.ALLOWED_HOSTS, 'local': s.LOCAL_MODE, 'cors_all': s.CORS_ALLOW_ALL_ORIGINS,"
        "'public': s.REGISTRY_PUBLIC_READ}))"
    )
    result = run([sys.executable, "manage.py", "shell", "-c", code], production_env)
    assert result.returncode == 0, result.stderr
    import json

    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["debug"] is False and values["local"] is False
    assert values["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["ssl"] and values["session"] and values["csrf"] and values["hsts"] >= 31_536_000
    assert "registry.example.com" in values["hosts"] and "*" not in values["hosts"]
    assert values["cors_all"] is False and values["public"] is False


@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_without_a_secret_key_production_refuses_to_start(production_env):
    env = dict(production_env)
    del env["DJANGO_SECRET_KEY"]
    result = run(CHECK, env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
    # No generated key was written for production to fall back on.
    assert not (Path(env["REGISTRY_DATA_DIR"]) / ".secret_key").exists()


@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_without_allowed_hosts_production_refuses_to_start(production_env):
    env = dict(production_env)
    del env["REGISTRY_ALLOWED_HOSTS"]
    result = run(CHECK, env)
    assert result.returncode != 0
    assert "REGISTRY_ALLOWED_HOSTS" in result.stderr


@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_the_secret_key_can_come_from_a_file(production_env, tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text(random_secret() + "\n")
    env = dict(production_env)
    del env["DJANGO_SECRET_KEY"]
    env["DJANGO_SECRET_KEY_FILE"] = str(key_file)
    result = run(CHECK, env)
    assert "DJANGO_SECRET_KEY" not in result.stderr and "security." not in result.stdout + result.stderr
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    shown = run([sys.executable, "manage.py", "shell", "-c", code], env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == key_file.read_text().strip()


@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_an_unreadable_secret_key_file_is_named(production_env, tmp_path):
    env = dict(production_env)
    del env["DJANGO_SECRET_KEY"]
    env["DJANGO_SECRET_KEY_FILE"] = str(tmp_path / "missing")
    result = run(CHECK, env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY_FILE" in result.stderr


@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_an_unknown_mode_is_refused(production_env):
    result = run(CHECK, {**production_env, "REGISTRY_ENV": "prod"})
    assert result.returncode != 0
    assert "REGISTRY_ENV" in result.stderr


# --- gunicorn's start --------------------------------------------------------------------------------


def gunicorn_env(tmp_path, bind: str, **extra: str) -> dict[str, str]:
    return clean_env(
        REGISTRY_BIND=bind,
        DATABASE_URL=f"sqlite:///{tmp_path}/g.sqlite3",
        REGISTRY_DATA_DIR=str(tmp_path / "data"),
        WEB_CONCURRENCY="1",
        **extra,
    )


@pytest.mark.gunicorn
@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "192.0.2.1", "registry.example.com"])
@pytest.mark.own_sqlite
def test_gunicorn_refuses_local_mode_on_a_non_loopback_address(tmp_path, host):
    env = gunicorn_env(tmp_path, f"{host}:{free_port()}")
    started = time.monotonic()
    result = subprocess.run(GUNICORN, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert time.monotonic() - started < 20
    output = result.stdout + result.stderr
    assert "REGISTRY_ENV" in output and "REGISTRY_LOCAL_ALLOW_ANY_BIND" in output
    assert "Listening at" not in output


@pytest.mark.gunicorn
@pytest.mark.own_sqlite
def test_gunicorn_serves_local_mode_on_any_address_when_told_to(tmp_path):
    port = free_port()
    env = gunicorn_env(tmp_path, f"0.0.0.0:{port}", REGISTRY_LOCAL_ALLOW_ANY_BIND="1")
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(GUNICORN, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "Listening at" not in log.read_text() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.poll() is None, log.read_text()
        assert f"Listening at: http://0.0.0.0:{port}" in log.read_text()
        # The warning says what is open and where.
        deadline = time.monotonic() + 10
        while "LOCAL MODE" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "LOCAL MODE" in log.read_text()
    finally:
        stop(server)


@pytest.mark.parametrize("bind", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2"])
@pytest.mark.own_sqlite
def test_the_loopback_check_accepts_loopback_binds(bind, monkeypatch, tmp_path):
    """gunicorn.conf's own decision, without starting a server."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gunicorn_conf_probe", ROOT / "registry_site" / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setenv("REGISTRY_BIND", "127.0.0.1:8003")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # or loading it names one for the session
    spec.loader.exec_module(module)
    assert module._is_loopback(f"{bind}:8003")
    assert not module._is_loopback("0.0.0.0:8003") and not module._is_loopback("[::]:8003")


@pytest.mark.gunicorn
def test_local_mode_logs_the_warning_at_start(tmp_path):
    with running_registry(tmp_path, workers=1) as base:
        assert requests.get(f"{base}/health", timeout=5).status_code == 200
        # In local mode the API is open: a write without a token is served.
        created = requests.post(f"{base}/models", json={"name": "live_local", "model_type": "audio"}, timeout=5)
        assert created.status_code == 201
    log = (tmp_path / "gunicorn.log").read_text()
    assert "LOCAL MODE" in log
    assert "REGISTRY_ENV=production" in log


@pytest.mark.gunicorn
def test_production_mode_starts_quietly_and_refuses_anonymous_writes(tmp_path):
    env = {
        "REGISTRY_ENV": "production",
        "DJANGO_SECRET_KEY": random_secret(),
        "REGISTRY_ALLOWED_HOSTS": "registry.example.com",
    }
    with running_registry(tmp_path, extra_env=env, workers=1) as base:
        proxy = {"X-Forwarded-Proto": "https"}
        assert requests.get(f"{base}/health", timeout=5).status_code == 200
        refused = requests.post(
            f"{base}/models", json={"name": "nope", "model_type": "audio"}, headers=proxy, timeout=5
        )
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert requests.get(f"{base}/models", headers=proxy, timeout=5).status_code == 401
        # Plain HTTP that did not come through the TLS proxy is sent to https.
        plain = requests.get(f"{base}/models", allow_redirects=False, timeout=5)
        assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
    assert "LOCAL MODE" not in (tmp_path / "gunicorn.log").read_text()


@pytest.mark.gunicorn
@pytest.mark.subprocess
@pytest.mark.own_sqlite
def test_behind_the_proxy_failed_attempts_are_counted_per_client(tmp_path):
    db = tmp_path / "proxy.sqlite3"
    env = {
        "REGISTRY_ENV": "production",
        "DJANGO_SECRET_KEY": random_secret(),
        "REGISTRY_ALLOWED_HOSTS": "registry.example.com",
        "REGISTRY_AUTH_FAILURES_PER_MINUTE": "3",
        "DATABASE_URL": f"sqlite:///{db}",
    }
    with running_registry(tmp_path, extra_env=env, workers=1) as base:
        token_env = clean_env(**env, REGISTRY_DATA_DIR=str(tmp_path / "data"))
        granted = run([sys.executable, "manage.py", "grant_role", "ci", "editor", "--create-user"], token_env)
        assert granted.returncode == 0, granted.stderr
        made = run([sys.executable, "manage.py", "create_token", "ci", "--scope", "read"], token_env)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        attacker = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "203.0.113.66",
            "Authorization": "Bearer mvr_guess",
        }
        for _ in range(4):
            requests.get(f"{base}/models", headers=attacker, timeout=5)
        honest = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7", "Authorization": f"Bearer {token}"}
        assert requests.get(f"{base}/models", headers=honest, timeout=5).status_code == 200
