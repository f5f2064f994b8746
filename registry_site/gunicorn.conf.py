"""gunicorn settings for `make run` and the Docker image. Every value can be overridden from the
environment (see the README)."""

import gc
import glob
import ipaddress
import multiprocessing
import os
import tempfile

import gunicorn

# Every worker writes its metrics into one folder that GET /metrics adds up (prometheus-client's
# multiprocess mode). prometheus-client chooses that mode when it is first imported, here, in the arbiter
# the workers fork from: the folder must be named before that import, and start empty (on_starting).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="registry-metrics-")

from prometheus_client import multiprocess  # noqa: E402  (after the folder is named)

from registry_site import gunicorn_body, gunicorn_worker  # noqa: E402

bind = os.environ.get("REGISTRY_BIND", "127.0.0.1:8003")
LOCAL_MODE = os.environ.get("REGISTRY_ENV", "local").strip().lower() == "local"


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]") if not address.startswith("unix:") else "unix"
    if host in ("localhost", "unix"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: cannot be sure


# Local mode has no authentication: it must not be reachable from other machines by accident.
if LOCAL_MODE and not _is_loopback(bind) and os.environ.get("REGISTRY_LOCAL_ALLOW_ANY_BIND", "") != "1":
    raise SystemExit(
        f"Refusing to serve the open local mode on {bind}, which other machines can reach. Set REGISTRY_ENV="
        "production (tokens required), bind to 127.0.0.1, or set REGISTRY_LOCAL_ALLOW_ANY_BIND=1 if something "
        "else restricts access (as docker-compose does by publishing the port on 127.0.0.1 only)."
    )

workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() + 1)))
# Threads let one worker keep serving while another request streams a multi-GB file; this gthread worker
# also holds clients that send their request slowly in its event loop, not in a thread, and answers 408
# to those too slow (REGISTRY_HEADER_TIMEOUT, REGISTRY_BODY_GRACE).
worker_class = "registry_site.gunicorn_worker.SlowClientThreadWorker"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# A 5 GiB upload over a slow link takes minutes; gunicorn's 30 s default would kill it mid-stream.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 900))
graceful_timeout = 30
keepalive = 5
# Temporary upload files go to the storage folder (FILE_UPLOAD_TEMP_DIR); gunicorn's own heartbeat
# files go to shared memory where there is one.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The registry logs each request itself (one line, JSON in production: registry_site/observability.py).
accesslog = None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


def on_starting(server):
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(folder, "*.db")):  # a previous run's workers
        os.remove(stale)


def child_exit(server, worker):
    # Imported above, not here: the arbiter calls this from its SIGCHLD handler, and a second worker's
    # exit during the import re-entered it and failed on the half-imported module (a traceback, and the
    # second worker's metrics left behind, when several workers stopped at once).
    multiprocess.mark_process_dead(worker.pid)
    gunicorn_worker.release_slot(worker)  # its share of the connections (gunicorn_worker.ACCEPT_HANDOFF)


def post_worker_init(worker):
    """The application is loaded (its URLs and views too, here rather than at the first request): its
    objects will live as long as the worker, so the garbage collector's full passes stop walking them
    (gc.freeze). Those passes over Django's hundreds of thousands of objects were the slowest requests'
    stalls: bench/assignment.py's p99 at 500/s."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (imports every view)
    gc.freeze()


def pre_request(worker, req):
    worker.log.debug("%s %s", req.method, req.path)  # gunicorn's own pre_request
    gunicorn_body.install(req)  # large uploads read straight from the socket
    spread = getattr(worker, "spread_kept_alive", None)  # this registry's worker class (not another one's)
    if spread is not None:
        spread(req)  # a worker holding more connections than its share closes this one after its response


def post_request(worker, req, environ, resp):
    """A response sent before its request's body was read (401, 413, 408...): the client may still be
    sending a body nobody will read. gunicorn ignores an application's `Connection: close` and would read
    that body, in a thread, however slowly it comes, before the next request; the worker drops it in its
    event loop instead and closes the connection (registry_site/gunicorn_worker.py, `linger`)."""
    reader = getattr(req.body, "reader", None) if req is not None else None
    unread = type(reader).__name__ == "ChunkedReader" or getattr(reader, "length", 0) > 0
    sock = environ.get("gunicorn.socket")
    if unread and sock is not None and hasattr(worker, "linger"):
        worker.linger(sock)


def when_ready(server):
    if not gunicorn_body.supported():
        server.log.warning(
            "registry_site/gunicorn_body.py was written for gunicorn %s, this is %s: uploads use gunicorn's "
            "own (slower) body reader until it is checked against this version.",
            gunicorn_body.WRITTEN_FOR,
            gunicorn.__version__,
        )
    if LOCAL_MODE:
        server.log.warning(
            "LOCAL MODE: the API is open to anyone who can reach %s, without tokens. "
            "Set REGISTRY_ENV=production to require them.",
            bind,
        )
