"""gunicorn settings for `make run` and the Docker image. Every value can be overridden from the
environment (see the README)."""
import multiprocessing
import os
import socket

bind = os.environ.get("REGISTRY_BIND", "127.0.0.1:8003")
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() + 1)))
# Threads let one worker keep serving while another request streams a multi-GB file.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# A 5 GiB upload over a slow link takes minutes; gunicorn's 30 s default would kill it mid-stream.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 900))
graceful_timeout = 30
keepalive = 5
# Temporary upload files go to the storage folder (FILE_UPLOAD_TEMP_DIR); gunicorn's own heartbeat
# files go to shared memory where there is one.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_request(worker, req, environ, resp):
    """After a 413 the client may still be sending a body we will never read. gunicorn ignores an
    application's `Connection: close` and would keep the connection for the next request (reading the
    unwanted body as one), so end our side now: the client gets its answer and then EOF."""
    if getattr(resp, "status_code", None) == 413:
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
