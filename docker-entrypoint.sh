#!/bin/sh
# Started as root only to hand the storage folders to the unprivileged user (a bind mount such as the
# seed's ./models:/models/storage is created root-owned by Docker), then runs as that user: migrations
# once, then the server replaces this shell so it receives signals directly.
set -e
if [ "$(id -u)" = "0" ]; then
    chown registry:registry "$REGISTRY_STORAGE_DIR" "$REGISTRY_DATA_DIR"
    exec setpriv --reuid=registry --regid=registry --init-groups "$0" "$@"
fi
python manage.py migrate --noinput
exec "$@"
