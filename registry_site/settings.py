"""Settings for the model registry, read from the environment.

With no environment at all the registry runs embedded: a SQLite file and a local storage folder under
./data, created when the registry starts (registry_site.startup; reading these settings writes nothing). `DATABASE_URL` and the `REGISTRY_S3_*` variables move it to PostgreSQL
and S3, where any number of stateless gunicorn workers can serve it. Every variable is listed in the
README; a malformed value stops the process with ImproperlyConfigured rather than being guessed at.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import dj_database_url
from corsheaders.defaults import default_headers as cors_default_headers
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def envchoice(name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default)."""
    value = os.environ.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {os.environ[name]!r}")
    return value


def envlist(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def envsecret(name: str) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker and Kubernetes secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from None
    return os.environ.get(name, "")


# --- Mode -------------------------------------------------------------------------------------------
# "local" is the embedded, loopback-only default; "production" is what the Docker image of a real
# deployment sets. One variable decides, so no half-configured mixture can exist.
REGISTRY_ENV = envstr("REGISTRY_ENV", "local").strip().lower()
if REGISTRY_ENV not in {"local", "production"}:
    raise ImproperlyConfigured(f"REGISTRY_ENV must be 'local' or 'production', got {REGISTRY_ENV!r}")
LOCAL_MODE = REGISTRY_ENV == "local"

DATA_DIR = Path(envstr("REGISTRY_DATA_DIR", str(BASE_DIR / "data"))).resolve()

DEBUG = envbool("DJANGO_DEBUG", False)

SECRET_KEY = envsecret("DJANGO_SECRET_KEY")
if not SECRET_KEY and not LOCAL_MODE:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is required in production")
# Production refuses to start on what `check --deploy` would only warn about, since nothing makes anyone
# run that: debug pages show settings, code and data to whoever triggers an error; a short or repetitive
# key can be guessed, and with it sessions forged.
MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_UNIQUE_CHARACTERS = 5  # Django's own rule (security.W009)
if not LOCAL_MODE:
    if DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_DEBUG=true is refused in production (REGISTRY_ENV=production): debug pages show settings, "
            "code and data to anyone who triggers an error. Unset it, or use REGISTRY_ENV=local."
        )
    if len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH or len(set(SECRET_KEY)) < MIN_SECRET_KEY_UNIQUE_CHARACTERS:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} random characters in production "
            f"(this one has {len(SECRET_KEY)}, {len(set(SECRET_KEY))} different); for example: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
# Local mode without one keeps a generated key beside its data, so sessions survive restarts and no key
# is ever committed: registry_site.startup reads it, or writes it the first time, when the registry starts.
LOCAL_SECRET_KEY_FILE = DATA_DIR / ".secret_key" if not SECRET_KEY else None

ALLOWED_HOSTS = envlist("REGISTRY_ALLOWED_HOSTS", [] if not LOCAL_MODE else ["localhost"])
if not LOCAL_MODE and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("REGISTRY_ALLOWED_HOSTS is required in production (the registry's host names)")
# Loopback names always: the container's health check and a sidecar call http://127.0.0.1:8003/health.
ALLOWED_HOSTS += [host for host in ("localhost", "127.0.0.1", "[::1]") if host not in ALLOWED_HOSTS]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "registry_site",
    "models_app",
    "deployments_app",
]

MIDDLEWARE = [
    "registry_site.observability.ObservabilityMiddleware",
    "registry_site.middleware.HeadWithoutBodyMiddleware",
    "registry_site.middleware.ContentSecurityPolicyMiddleware",
    "registry_site.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "registry_site.middleware.CrossOriginMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "registry_site.audit.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "registry_site.urls"
WSGI_APPLICATION = "registry_site.wsgi.application"
# The seed's paths have no trailing slash (/models, /deploy); never redirect them.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# --- Database ---------------------------------------------------------------------------------------
def database_from_url(url: str) -> dict[str, Any]:
    """Parse DATABASE_URL. The seed's own value names SQLAlchemy's asyncpg driver
    (postgresql+asyncpg://...); we accept it verbatim and connect through psycopg 3."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ImproperlyConfigured(f"DATABASE_URL is not a URL: {url!r}")
    dialect = scheme.split("+", 1)[0].lower()
    if dialect in {"postgres", "postgresql", "pgsql"}:
        url = f"postgresql://{rest}"
    elif dialect != "sqlite":
        raise ImproperlyConfigured(f"DATABASE_URL must be postgresql:// or sqlite://, got {scheme}://")
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60)))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed: {exc}") from None
    if config["ENGINE"] == "django.db.backends.postgresql":
        config["CONN_HEALTH_CHECKS"] = True
    else:
        config.update(SQLITE)
    return config


# SQLite serves several gunicorn workers only with WAL (readers never wait for the writer), a busy
# timeout (writers queue instead of failing at once) and IMMEDIATE transactions (a transaction takes the
# write lock when it starts, so two writers never deadlock upgrading read locks). synchronous=NORMAL is
# WAL's durable setting against a crash of the process (a power cut may lose the last commits, never
# corrupt the file). Each connection (one per worker thread, kept open) reads the file through a memory
# map of up to 1 GiB instead of read() calls, and keeps up to 64 MiB of pages (cache_size=-KiB) where
# SQLite's default is 2 MiB: a million versions' indexes stay in memory.
SQLITE_OPTIONS = {
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
        "PRAGMA mmap_size=1073741824; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
    ),
}

# Django's SQLite backend, its statements' placeholders rewritten once (registry_site/sqlite/base.py). Its
# tests run in memory, as Django's backend's do: said here because tools that know that backend by its
# name (pytest-django's per-worker databases) do not know this one.
SQLITE = {"ENGINE": "registry_site.sqlite", "OPTIONS": SQLITE_OPTIONS, "TEST": {"NAME": ":memory:"}}

DATABASE_URL = envstr("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            **SQLITE,
            "NAME": DATA_DIR / "registry.sqlite3",
            # As for a DATABASE_URL: opening the file and running the pragmas above on every request was
            # a sixth of a read's CPU (issue #12).
            "CONN_MAX_AGE": envint("DATABASE_CONN_MAX_AGE", 60),
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --- Artifact storage -------------------------------------------------------------------------------
S3_BUCKET = envstr("REGISTRY_S3_BUCKET")
# Also used for backups to s3:// (models_app/backup.py), whatever stores the model files.
REGISTRY_S3_ENDPOINT_URL = envstr("REGISTRY_S3_ENDPOINT_URL") or None
REGISTRY_S3_REGION = envstr("REGISTRY_S3_REGION") or None
STORAGE_DIR = Path(envstr("REGISTRY_STORAGE_DIR", str(DATA_DIR / "storage"))).resolve()

# How to talk to the S3 store: the files' bucket below, and backups or a migrate_storage to s3:// too.
REGISTRY_S3_OPTIONS = {
    "endpoint_url": REGISTRY_S3_ENDPOINT_URL,
    "region_name": REGISTRY_S3_REGION,
    "querystring_expire": envint("REGISTRY_S3_PRESIGN_SECONDS", 300, minimum=1),
    # What differs between S3-compatible stores (README, "S3-compatible stores").
    "checksums": envchoice("REGISTRY_S3_CHECKSUMS", ("when_required", "when_supported")),
    "addressing_style": envchoice("REGISTRY_S3_ADDRESSING_STYLE", ("auto", "path", "virtual")),
    "signature_version": envchoice("REGISTRY_S3_SIGNATURE_VERSION", ("s3v4", "s3")),
    # Multipart uploads: part size and parallel parts, measured by bench/s3_transfer.py.
    "part_size": envint("REGISTRY_S3_PART_SIZE_MB", 64, minimum=5) * 1024**2,
    "concurrency": envint("REGISTRY_S3_CONCURRENCY", 8, minimum=1),
}
if S3_BUCKET:
    artifact_storage = {
        "BACKEND": "registry_site.storage.S3ArtifactStorage",
        "OPTIONS": {"bucket_name": S3_BUCKET, "location": envstr("REGISTRY_S3_PREFIX"), **REGISTRY_S3_OPTIONS},
    }
    # Uploads stream into a local temporary file before going to S3.
    FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "incoming")
else:
    artifact_storage = {
        "BACKEND": "registry_site.storage.LocalArtifactStorage",
        "OPTIONS": {"location": str(STORAGE_DIR)},
    }
    # Same filesystem as the storage folder, so storing a finished upload is a rename, not a copy.
    FILE_UPLOAD_TEMP_DIR = str(STORAGE_DIR / ".incoming")

# DATA_DIR, FILE_UPLOAD_TEMP_DIR and STATIC_ROOT are created when the registry starts (registry_site.startup).

STORAGES = {
    "default": artifact_storage,
    # Cache-busted, compressed files once `collectstatic` has run (make run, the image); before that
    # (tests, a fresh checkout) the files under their own names (registry_site.storage).
    "staticfiles": {"BACKEND": "registry_site.storage.RegistryStaticFilesStorage"},
}

# On S3, downloads may redirect to a short-lived presigned URL instead of streaming through a worker.
REGISTRY_S3_REDIRECT_DOWNLOADS = envbool("REGISTRY_S3_REDIRECT_DOWNLOADS", False)

# A file that does not look like its declared format is recorded as such; refusing it is opt-in.
REGISTRY_REJECT_FORMAT_MISMATCH = envbool("REGISTRY_REJECT_FORMAT_MISMATCH", False)


def envchoicevalues(name: str) -> list[str]:
    """Values an operator adds to a list of choices (models_app.models.format_choices): comma-separated,
    each of the shape the database checks (lowercase letters, digits, '_', '.', '-'; at most 32)."""
    values = envlist(name)
    for value in values:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]{0,31}", value):
            raise ImproperlyConfigured(
                f"{name}: {value!r} is not a valid value (1-32 lowercase letters, digits, '_', '.' or '-', "
                "starting with a letter or digit)"
            )
    return values


# Formats and model types beyond the seed's and `other` (e.g. sklearn,xgboost,gguf,safetensors): read at
# each request, so adding one is a restart, not a migration.
REGISTRY_EXTRA_FORMATS = envchoicevalues("REGISTRY_EXTRA_FORMATS")
REGISTRY_EXTRA_MODEL_TYPES = envchoicevalues("REGISTRY_EXTRA_MODEL_TYPES")

# Every uploaded file goes to disk through the hashing handler: never held in memory, hashed once.
FILE_UPLOAD_HANDLERS = ["models_app.uploads.HashingUploadHandler"]
FILE_UPLOAD_PERMISSIONS = 0o640
REGISTRY_MAX_UPLOAD_BYTES = envint("REGISTRY_MAX_UPLOAD_BYTES", 20 * 1024**3, minimum=1)
# Bodies that are not a file (JSON, form fields) are small; anything bigger is refused with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("REGISTRY_MAX_JSON_BYTES", 2 * 1024**2, minimum=1024)
# How long a POST's answer is kept for retries with the same Idempotency-Key (registry_site.idempotency).
REGISTRY_IDEMPOTENCY_KEY_HOURS = envint("REGISTRY_IDEMPOTENCY_KEY_HOURS", 24, minimum=1)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
# Slow clients get 408 (registry_site/gunicorn_worker.py, body_rate.py): a request's head must arrive within
# REGISTRY_HEADER_TIMEOUT seconds, the start of its body within REGISTRY_BODY_GRACE seconds after it, and
# the rest at REGISTRY_BODY_MIN_RATE bytes/s on average once the grace period is over.
REGISTRY_HEADER_TIMEOUT = envint("REGISTRY_HEADER_TIMEOUT", 10, minimum=1)
REGISTRY_BODY_GRACE = envint("REGISTRY_BODY_GRACE", 10, minimum=1)
REGISTRY_BODY_MIN_RATE = envint("REGISTRY_BODY_MIN_RATE", 16384, minimum=1)


# --- Static files and the admin ---------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Tests and a fresh checkout serve straight from the apps' folders; `collectstatic` is still run by
# `make run` and the image so whitenoise can serve compressed, cache-busted files.
WHITENOISE_USE_FINDERS = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True


# --- API --------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["registry_site.renderers.RegistryJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "registry_site.parsers.StrictJSONParser",
        "registry_site.parsers.RegistryMultiPartParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": ["registry_site.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["registry_site.permissions.RegistryPermission"],
    "DEFAULT_THROTTLE_CLASSES": ["registry_site.throttling.WriteRateThrottle"],
    "DEFAULT_FILTER_BACKENDS": [
        "registry_site.filters.StrictFilterBackend",
        "registry_site.permissions.ModelScopeFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "registry_site.pagination.RegistryCursorPagination",
    "EXCEPTION_HANDLER": "registry_site.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "registry_site.schema.RegistryAutoSchema",
    # `?format=` is a model version's field, not an output format switch.
    "URL_FORMAT_OVERRIDE": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}


# --- Access ---------------------------------------------------------------------------------------
def _networks(name: str, default: str) -> list:
    items = envlist(name, default.split(","))
    if "*" in items:  # gunicorn's "trust every peer"
        return [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    try:
        return [ipaddress.ip_network(item, strict=False) for item in items]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


# The reverse proxies whose X-Forwarded-For names the real client (audit addresses, throttles). The
# same variable tells gunicorn whose X-Forwarded-Proto to believe.
REGISTRY_TRUSTED_PROXIES = _networks("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


# --- Webhooks (registry_site.webhooks, `manage.py deliver_webhooks`) ----------------------------------------
def _schedule(name: str, default: str) -> list[int]:
    items = envlist(name, default.split(","))
    try:
        schedule = [int(item) for item in items]
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be comma-separated seconds, got {os.environ[name]!r}") from None
    if not schedule or min(schedule) < 0:
        raise ImproperlyConfigured(f"{name} must list at least one delay, none negative")
    return schedule


# Seconds to connect, and to wait for the answer, per attempt.
REGISTRY_WEBHOOK_TIMEOUT = envint("REGISTRY_WEBHOOK_TIMEOUT", 10, minimum=1)
# The delays between a failed attempt and the next: 8 attempts over about 27.6 hours (each ±10%).
REGISTRY_WEBHOOK_RETRY_SCHEDULE = _schedule("REGISTRY_WEBHOOK_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000")
# A subscription is disabled once it has failed this many times in a row AND for this long.
REGISTRY_WEBHOOK_DISABLE_AFTER_FAILURES = envint("REGISTRY_WEBHOOK_DISABLE_AFTER_FAILURES", 5, minimum=1)
REGISTRY_WEBHOOK_DISABLE_AFTER_SECONDS = envint("REGISTRY_WEBHOOK_DISABLE_AFTER_SECONDS", 24 * 3600)
# Production only (local mode sends anywhere): webhook URLs may reach loopback, private, link-local...
# addresses when set, or those in the listed networks (CIDRs) only.
REGISTRY_WEBHOOK_ALLOW_PRIVATE = envbool("REGISTRY_WEBHOOK_ALLOW_PRIVATE", False)
REGISTRY_WEBHOOK_ALLOWED_NETWORKS = (
    _networks("REGISTRY_WEBHOOK_ALLOWED_NETWORKS", "") if os.environ.get("REGISTRY_WEBHOOK_ALLOWED_NETWORKS") else []
)
# Delivered and failed deliveries (and their attempt log) are deleted by the worker after this many days.
REGISTRY_WEBHOOK_KEEP_DAYS = envint("REGISTRY_WEBHOOK_KEEP_DAYS", 30, minimum=1)
# How long the worker sleeps when nothing is due.
REGISTRY_WEBHOOK_POLL_SECONDS = envint("REGISTRY_WEBHOOK_POLL_SECONDS", 2, minimum=1)

# Alert rules (deployments_app.alerts) are evaluated when points arrive, at most once per this many seconds
# per rule and version in each server process (0: every batch), and less often when evaluating takes long;
# `manage.py evaluate_alerts` from cron evaluates what a burst's last batches left. A time window's
# aggregate reads all of its points: once per batch, a busy stream would spend more on its rules than on
# its points.
REGISTRY_ALERT_EVALUATION_SECONDS = envint("REGISTRY_ALERT_EVALUATION_SECONDS", 5)

# Production only (local mode is open): reads without a token when set; writes always need one.
REGISTRY_PUBLIC_READ = envbool("REGISTRY_PUBLIC_READ", False)
REGISTRY_THROTTLE_WRITES = envstr("REGISTRY_THROTTLE_WRITES", "600/min")
REGISTRY_AUTH_FAILURES_PER_MINUTE = envint("REGISTRY_AUTH_FAILURES_PER_MINUTE", 20, minimum=1)
# Failed admin logins per address and per username in a minute (in both modes: the admin always has a login).
REGISTRY_LOGIN_FAILURES_PER_MINUTE = envint("REGISTRY_LOGIN_FAILURES_PER_MINUTE", 10, minimum=1)

# Throttle counters must be shared by every worker on every machine: the database is already shared.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "registry_cache",  # created by registry_site's migrations
    }
}

if not LOCAL_MODE:
    # TLS ends at the reverse proxy in front of the registry, which says so in X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("REGISTRY_SSL_REDIRECT", True)
    # Health checks come from the container runtime and load balancers over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("REGISTRY_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("REGISTRY_HSTS_INCLUDE_SUBDOMAINS", False)
    CSRF_TRUSTED_ORIGINS = envlist("REGISTRY_CSRF_TRUSTED_ORIGINS")
    SILENCED_SYSTEM_CHECKS = [
        # HSTS for subdomains and the browsers' preload list commit the whole domain, not just this
        # service: the domain's owner opts in with REGISTRY_HSTS_INCLUDE_SUBDOMAINS, and preloading is
        # done at hstspreload.org, not by an application.
        "security.W005",
        "security.W021",
    ]

SPECTACULAR_SETTINGS = {
    "TITLE": "Model Version Registry",
    "DESCRIPTION": "Models, their versions and files, default versions, deployments and rollbacks.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "registry_site.schema.document_errors",
    ],
    # Three different choice sets are all called "status".
    "ENUM_NAME_OVERRIDES": {
        "VersionStatusEnum": "models_app.models.VersionStatus",
        "DeploymentStatusEnum": "deployments_app.models.DeploymentStatus",
        "WebhookDeliveryStatusEnum": "registry_site.models.DeliveryStatus",
        "HealthStatusEnum": ["healthy", "unhealthy"],
        "ReadyStatusEnum": ["ready", "not ready"],
    },
}


# --- Web pages (CORS) -------------------------------------------------------------------------------
def cors_origins(name: str) -> list[str]:
    """Origins exactly as a browser sends them: scheme://host[:port], nothing after."""
    origins = envlist(name)
    for origin in origins:
        if not re.fullmatch(r"https?://[^/?#\s]+", origin):
            raise ImproperlyConfigured(f"{name}: {origin!r} is not an origin like https://app.example.com:8080")
    return origins


# The seed's JavaScript example runs in a web page: a local registry answers pages served from this
# machine (any port of localhost, 127.0.0.1, [::1]), not every page the developer's browser opens;
# REGISTRY_CORS_ORIGINS adds others, and is the only list in production. A page of any other origin gets
# no CORS headers, and its writes are refused outright (registry_site.middleware.CrossOriginMiddleware).
CORS_ALLOW_ALL_ORIGINS = False
CORS_ALLOWED_ORIGINS = cors_origins("REGISTRY_CORS_ORIGINS")
LOOPBACK_ORIGIN_REGEXES = [r"^http://localhost(:\d+)?$", r"^http://127\.0\.0\.1(:\d+)?$", r"^http://\[::1\](:\d+)?$"]
CORS_ALLOWED_ORIGIN_REGEXES = LOOPBACK_ORIGIN_REGEXES if LOCAL_MODE else []
CORS_EXPOSE_HEADERS = ["Content-Disposition", "ETag", "Content-Length", "X-Request-ID", "Idempotent-Replayed"]
# A page may retry its writes safely too (registry_site.idempotency).
CORS_ALLOW_HEADERS = (*cors_default_headers, "idempotency-key")

# One line per request (registry_site/observability.py) and every other log record: JSON lines for a log
# collector by default in production, readable text by default in local mode.
REGISTRY_LOG_FORMAT = envstr("REGISTRY_LOG_FORMAT", "plain" if LOCAL_MODE else "json").lower()
if REGISTRY_LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"REGISTRY_LOG_FORMAT must be json or plain, not {REGISTRY_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": REGISTRY_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": envstr("REGISTRY_LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
# GET /metrics without a token in production mode (when only a private network reaches the server).
REGISTRY_METRICS_PUBLIC = envbool("REGISTRY_METRICS_PUBLIC", False)
