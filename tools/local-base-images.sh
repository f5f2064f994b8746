#!/usr/bin/env bash
# Vendored from the workplace's shared tools (shared/tools/local-base-images.sh), unchanged below this
# note, so that `make compose-test` works on a clean clone where only the repository's own files count.
# tools/compose-test.sh runs it when no Docker engine answers or Docker Hub cannot be reached.
# Make Docker usable on a Debian bookworm machine that has no Docker engine and cannot reach Docker Hub:
# installs docker.io + docker-compose + debootstrap from Debian's archive, starts a dockerd of its own if none
# answers (state under $WORK, left running), and builds local stand-ins for the base images the project
# names: debian:bookworm-local (debootstrap), python:3.11-slim-bookworm (Debian's python3.11 in a venv at
# /opt/python, first on PATH) and postgres:16 (Debian's PostgreSQL 15 behind an entrypoint that honours
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB / POSTGRES_HOST_AUTH_METHOD and initdb.d scripts, like the
# official image). The host's extra CA certificates are copied into the python image so pip inside builds
# trusts what the host trusts. Idempotent: a second run reuses the packages, the daemon and the images.
# Usage: WORK=/some/scratch/dir local-base-images.sh   then   export DOCKER_HOST=unix://$WORK/docker.sock
# (the last line it prints). Note: dockerd's default bridge turns on IP forwarding and adds iptables rules.
set -euo pipefail
WORK=${WORK:?set WORK to a scratch folder (daemon state and image build files go there)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
if [ -z "${DOCKER_HOST:-}" ] && docker info >/dev/null 2>&1; then :; else export DOCKER_HOST=${DOCKER_HOST:-unix://$WORK/docker.sock}; fi

ts() { date +%s.%N; }
elapsed() { printf '%.1f' "$(echo "$(ts) - $1" | bc)"; }
log() { printf '\n== %s\n' "$*"; }
mkdir -p "$WORK"

# 1. Packages (Debian archive only).
t=$(ts)
if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null \
   || ! command -v debootstrap >/dev/null || ! command -v bc >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io docker-compose debootstrap bc curl
fi
log "packages ready ($(elapsed "$t") s)"

# 2. A private dockerd: overlay2, cgroupfs (v1), default bridge with iptables NAT - all work on this host.
t=$(ts)
STARTED_DOCKERD=""
if ! docker info >/dev/null 2>&1; then
    mkdir -p "$WORK/data" "$WORK/exec"
    setsid nohup dockerd --data-root "$WORK/data" --exec-root "$WORK/exec" \
        --pidfile "$WORK/dockerd.pid" -H "$DOCKER_HOST" >"$WORK/dockerd.log" 2>&1 &
    STARTED_DOCKERD=$!
    echo "$STARTED_DOCKERD" >"$WORK/dockerd.launch.pid"
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null || { tail -50 "$WORK/dockerd.log"; exit 1; }
fi
log "dockerd ready ($(elapsed "$t") s)"


# 3. Base OS image from Debian's archive (Docker Hub is not reachable).
t=$(ts)
if ! docker image inspect debian:bookworm-local >/dev/null 2>&1; then
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -30 "$WORK/debootstrap.log"; exit 1; }
    base=${MIRROR%/debian}
    cat >"$WORK/rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $base/debian-security bookworm-security main
EOF
    printf '#!/bin/sh\nexit 101\n' >"$WORK/rootfs/usr/sbin/policy-rc.d"
    chmod +x "$WORK/rootfs/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\n' >"$WORK/rootfs/etc/apt/apt.conf.d/90local-norecommends"
    rm -rf "$WORK"/rootfs/var/lib/apt/lists/* "$WORK"/rootfs/var/cache/apt/archives/*.deb \
        "$WORK"/rootfs/var/cache/apt/*.bin "$WORK/rootfs/etc/resolv.conf"
    : >"$WORK/rootfs/etc/hostname"
    tar --numeric-owner -C "$WORK/rootfs" -c . | docker import -c 'CMD ["bash"]' - debian:bookworm-local
    rm -rf "$WORK/rootfs"
fi
log "debian:bookworm-local ready ($(elapsed "$t") s)"

# 4. Stand-ins for the images the project names: python:3.11-slim-bookworm (Dockerfile) and
#    postgres:16 (docker-compose.yml; Debian bookworm only has PostgreSQL 15, so that is what it holds).
mkdir -p "$WORK/images/python/certs" "$WORK/images/postgres"
# The host's extra CA certificates, so pip inside `docker build` trusts what the host trusts.
rm -f "$WORK"/images/python/certs/*.crt
cp /usr/local/share/ca-certificates/*.crt "$WORK/images/python/certs/" 2>/dev/null || true
cat >"$WORK/images/python/Dockerfile" <<'EOF'
FROM debian:bookworm-local
ENV LANG=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates netbase tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/python \
 && /opt/python/bin/python -m pip --version
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["python3"]
EOF
cat >"$WORK/images/postgres/Dockerfile" <<'EOF'
FROM debian:bookworm-local
ENV LANG=C.UTF-8
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
EOF
cat >"$WORK/images/postgres/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# First-run initialisation like the official postgres image: POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB, POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, /docker-entrypoint-initdb.d/*.sh|*.sql.
set -e
: "${PGDATA:=/var/lib/postgresql/data}"
if [ "$1" = "postgres" ] && [ "$(id -u)" = "0" ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "$1" = "postgres" ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != "trust" ]; then
        echo "error: POSTGRES_PASSWORD is not set (or set POSTGRES_HOST_AUTH_METHOD=trust)" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-unused}" > "$pwfile"
    # shellcheck disable=SC2086
    initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" $POSTGRES_INITDB_ARGS
    rm -f "$pwfile"
    echo "host all all all $POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    # The temporary server listens on a private socket only, so pg_isready (the compose healthcheck)
    # stays false until the real server is up.
    initsock=$(mktemp -d)
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$initsock" -w start
    if [ "$POSTGRES_DB" != "postgres" ]; then
        psql -v ON_ERROR_STOP=1 -h "$initsock" -U "$POSTGRES_USER" -d postgres \
            -c "CREATE DATABASE \"$POSTGRES_DB\""
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)  . "$f" ;;
            *.sql) psql -v ON_ERROR_STOP=1 -h "$initsock" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    rmdir "$initsock"
fi
exec "$@"
EOF
chmod +x "$WORK/images/postgres/docker-entrypoint.sh"

t=$(ts)
docker build -q -t python:3.11-slim-bookworm "$WORK/images/python" >"$WORK/build-python.log" 2>&1 \
    || { tail -40 "$WORK/build-python.log"; exit 1; }
log "python:3.11-slim-bookworm ready ($(elapsed "$t") s)"
t=$(ts)
docker build -q -t postgres:16 -t postgres:15-bookworm-local "$WORK/images/postgres" \
    >"$WORK/build-postgres.log" 2>&1 || { tail -40 "$WORK/build-postgres.log"; exit 1; }
log "postgres:16 (PostgreSQL 15 inside) ready ($(elapsed "$t") s)"

echo "export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}"
