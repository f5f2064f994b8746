#!/usr/bin/env bash
# make compose-test: the seed's docker-compose stack, built and run for real, then taken down.
#
#  1. Docker: the running engine; if none answers or Docker Hub cannot be reached, tools/local-base-images.sh
#     installs Debian's docker.io and docker-compose, starts a dockerd of its own (state under
#     $COMPOSE_TEST_WORK, left running for the next run) and builds the base images locally.
#  2. docker-compose build (timed; the image's size is printed), docker-compose up -d, wait for /health.
#  3. The seed's curl examples, verbatim, and its troubleshooting commands (docker-compose ps, pg_isready and
#     ls in the containers, docker-compose logs).
#  4. The uploaded file is in the mounted ./models folder with the right sha256, and the rows are in the
#     container's PostgreSQL (psql in the database container).
#  5. docker-compose restart, then a restart of the database alone: the registry answers and writes again.
#  6. docker-compose down -v and the test's files removed, also when a step fails: nothing is left running.
#
# The stack uses the seed's fixed container names and port 8003, so it refuses to start while another stack
# with those names runs, or while ./models holds files (they would be someone's models).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-registry-compose-test}
WORK=${COMPOSE_TEST_WORK:-/var/tmp/registry-docker}
BASE=http://localhost:8003
APP=photoidentifier-model-registry
WORKER=photoidentifier-webhook-worker
DB=photoidentifier-registry-db
# The image is named in docker-compose.yml: the webhook worker runs the registry's own.
IMAGE=photoidentifier-model-registry
STARTED=$(date +%s)

step() { printf '\n== [%3ss] %s\n' "$(($(date +%s) - STARTED))" "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }
show() { printf '$ %s\n' "$*"; "$@"; }

# --- 1. Docker ----------------------------------------------------------------------------------------------
hub_code=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' https://registry-1.docker.io/v2/ 2>/dev/null || true)
if docker info >/dev/null 2>&1 && command -v docker-compose >/dev/null && [ "$hub_code" = 401 ]; then
    step "Docker engine and Docker Hub reachable"
elif [ -z "${DOCKER_HOST:-}" ] && [ -S "$WORK/docker.sock" ] && DOCKER_HOST=unix://$WORK/docker.sock docker info >/dev/null 2>&1 \
    && docker --host "unix://$WORK/docker.sock" image inspect python:3.11-slim-bookworm postgres:16 >/dev/null 2>&1; then
    export DOCKER_HOST=unix://$WORK/docker.sock
    step "Docker Hub unreachable (HTTP ${hub_code:-none}); the local engine under $WORK has the base images"
else
    step "Docker Hub unreachable (HTTP ${hub_code:-none}) or no Docker engine: tools/local-base-images.sh"
    mkdir -p "$WORK"
    WORK=$WORK tools/local-base-images.sh | tee "$WORK/local-base-images.out"
    export DOCKER_HOST=${DOCKER_HOST:-$(tail -1 "$WORK/local-base-images.out" | sed -n 's/^export DOCKER_HOST=//p')}
fi
docker info --format 'engine {{.ServerVersion}}, storage {{.Driver}}' || fail "no Docker engine answers"

if [ -n "$(docker ps -aq --filter "name=^($APP|$WORKER|$DB)$")" ]; then
    fail "containers $APP / $WORKER / $DB exist already (another stack?): stop them with docker-compose down first"
fi
if [ -n "$(ls -A models 2>/dev/null)" ]; then
    fail "./models holds files: the test mounts it as the seed does and would mix its files with them"
fi

SCRATCH=$(mktemp -d)
cleanup() {
    status=$?
    cd "$ROOT"
    step "docker-compose down -v"
    docker-compose down -v --remove-orphans || true
    # The files were written by the container's user: remove them the same way.
    if [ -d models ]; then
        docker run --rm --entrypoint sh -v "$ROOT/models:/clean" "$IMAGE" \
            -c 'rm -rf /clean/* /clean/.[!.]*' >/dev/null 2>&1 || true
        rmdir models 2>/dev/null || true
    fi
    rm -rf "$SCRATCH"
    left=$(docker ps -q --filter "name=^($APP|$WORKER|$DB)$")
    [ -z "$left" ] || { echo "containers still running: $left" >&2; status=1; }
    if [ "$status" = 0 ]; then
        step "compose-test passed in $(($(date +%s) - STARTED)) s (build ${BUILD_SECONDS:-?} s, image ${IMAGE_SIZE:-?})"
    fi
    exit "$status"
}
trap cleanup EXIT

# --- 2. Build and start -------------------------------------------------------------------------------------
step "docker-compose build"
build_started=$(date +%s)
docker-compose build --quiet model-registry
BUILD_SECONDS=$(($(date +%s) - build_started))
IMAGE_SIZE=$(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}')
echo "built in $BUILD_SECONDS s; image $IMAGE: $IMAGE_SIZE"

wait_healthy() {
    for _ in $(seq 1 90); do
        curl -fsS -m 5 "$BASE/health" >/dev/null 2>&1 && return 0
        sleep 1
    done
    docker-compose ps
    docker-compose logs --tail 50
    fail "$BASE/health did not answer 200 within 90 s"
}
step "docker-compose up -d"
docker-compose up -d
wait_healthy
# The webhook worker starts once the registry is healthy, and keeps running.
for _ in $(seq 1 30); do
    [ -n "$(docker ps -q --filter "name=^$WORKER$" --filter status=running)" ] && break
    sleep 1
done
[ -n "$(docker ps -q --filter "name=^$WORKER$" --filter status=running)" ] || {
    docker-compose logs --tail 30 webhook-worker
    fail "the webhook worker ($WORKER) is not running"
}

# --- 3. The seed's examples and troubleshooting commands ----------------------------------------------------
cd "$SCRATCH"
# The files the seed's examples upload: a SavedModel archive and an ONNX file (the registry checks both).
mkdir -p saved_model/variables && printf 'saved model graph' >saved_model/saved_model.pb
python3 -c "import shutil; shutil.make_archive('model', 'zip', 'saved_model')"
printf '\010\010\022\015registry-demo' >model.onnx

expect() {  # expect STATUS curl-arguments...: run the seed's curl, show its answer, check its status
    want=$1
    shift
    printf '$ curl %s\n' "$*"
    code=$(curl -sS -o answer.json -w '%{http_code}' "$@")
    cat answer.json
    printf '\n-> %s\n' "$code"
    [ "$code" = "$want" ] || fail "expected HTTP $want from: curl $*"
}
step "the seed's curl examples"
expect 200 http://localhost:8003/health
expect 200 http://localhost:8003/models
expect 201 -X POST http://localhost:8003/models \
  -H "Content-Type: application/json" \
  -d '{
    "name": "image_classifier",
    "description": "ResNet-50 image classifier",
    "model_type": "classification"
  }'
expect 200 http://localhost:8003/models/image_classifier
# v1 as in the seed's Python client (an ONNX file), so that the examples naming v1 have it.
expect 201 -X POST http://localhost:8003/models/image_classifier/versions \
  -F "version=v1" -F "format=onnx" -F "accuracy=0.85" -F "input_shape=[1,3,224,224]" -F "output_shape=[1,1000]" \
  -F "file=@model.onnx"
expect 201 -X POST http://localhost:8003/models/image_classifier/versions \
  -F "version=v2" \
  -F "format=tensorflow_saved_model" \
  -F "accuracy=0.95" \
  -F "input_shape=[1,3,224,224]" \
  -F "output_shape=[1,1000]" \
  -F "file=@model.zip"
expect 200 http://localhost:8003/models/image_classifier/versions
expect 200 http://localhost:8003/models/image_classifier/versions/v1
expect 201 -X POST http://localhost:8003/deploy \
  -H "Content-Type: application/json" \
  -d '{
    "model_name": "image_classifier",
    "version": "v1",
    "deployment_target": "production",
    "deployed_by": "admin"
  }'
expect 200 http://localhost:8003/models/image_classifier/versions/default
grep -q '"version":"v1"' answer.json || fail "the default version is not v1"
show curl -fsS -o downloaded.zip http://localhost:8003/models/image_classifier/versions/v2/file
cmp model.zip downloaded.zip || fail "the downloaded file differs from the uploaded one"

step "the seed's troubleshooting commands"
cd "$ROOT"
show docker-compose ps
show docker-compose ps postgres
show docker exec "$DB" pg_isready -U photoidentifier
show docker exec "$APP" ls -la /models/storage
show docker-compose logs --tail 5 model-registry

# --- 4. The file on the host, the rows in PostgreSQL -------------------------------------------------------
step "the file in ./models, the rows in the container's PostgreSQL"
digest=$(sha256sum "$SCRATCH/model.zip" | cut -d' ' -f1)
stored=models/sha256/${digest:0:2}/${digest:2:2}/$digest
show ls -l "$stored" || fail "$stored is not in the mounted ./models folder"
if [ -r "$stored" ]; then
    [ "$(sha256sum "$stored" | cut -d' ' -f1)" = "$digest" ] || fail "$stored does not hold the uploaded bytes"
fi
psql_in_db() { docker exec "$DB" psql -U photoidentifier -d photoidentifier -tA -c "$1"; }
rows=$(psql_in_db "SELECT m.name || ' ' || v.version || ' ' || v.checksum FROM model_versions v
                   JOIN models m ON m.id = v.model_id ORDER BY v.version")
printf '%s\n' "$rows"
printf '%s\n' "$rows" | grep -qx "image_classifier v2 $digest" || fail "version v2's row is not in PostgreSQL"
[ "$(psql_in_db "SELECT count(*) FROM model_deployments WHERE deployment_status = 'active'")" = 1 ] \
    || fail "the deployment's row is not in PostgreSQL"

# --- 5. Restarts -----------------------------------------------------------------------------------------
step "docker-compose restart"
docker-compose restart
wait_healthy
curl -fsS "$BASE/models/image_classifier/versions/v2" | grep -q "$digest" || fail "v2 is gone after the restart"

step "restart of the database alone: the registry reconnects"
docker-compose restart postgres
for _ in $(seq 1 60); do docker exec "$DB" pg_isready -U photoidentifier -q && break; sleep 1; done
code=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/models/image_classifier/versions")
[ "$code" = 200 ] || fail "the first request after the database restart answered $code"
cd "$SCRATCH"
expect 201 -X POST http://localhost:8003/models/image_classifier/versions -F "version=v3" -F "format=onnx" \
  -F "file=@model.onnx"
cd "$ROOT"
