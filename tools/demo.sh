#!/bin/sh
# The README's quick start, run for you against a registry that `make run` is serving:
#   make demo [PORT=8003]      (or: tools/demo.sh http://localhost:8003)
# Makes the sample model file the examples upload, then registers a model and a version from it.
set -eu
BASE=${1:-http://localhost:8003}
MODEL=${DEMO_MODEL:-image_classifier}

run() {
    printf '$ %s\n' "$*"
    "$@"
    echo
}

if ! curl -fsS "$BASE/health" >/dev/null 2>&1; then
    echo "No registry answers at $BASE: start it first with \`make run\` (in another terminal)." >&2
    exit 1
fi
# A minimal ONNX file: a ModelProto with ir_version 8 and a producer name (the registry checks the header).
printf '%s\n' "\$ printf '\\010\\010\\022\\015registry-demo' > model.onnx"
printf '\010\010\022\015registry-demo' > model.onnx
echo
run curl -sS "$BASE/health"
run curl -sS -X POST "$BASE/models" -H "Content-Type: application/json" \
    -d "{\"name\": \"$MODEL\", \"description\": \"ResNet-50 image classifier\", \"model_type\": \"classification\"}"
run curl -sS -X POST "$BASE/models/$MODEL/versions" \
    -F "version=v1" -F "format=onnx" -F "accuracy=0.95" -F "file=@model.onnx"
run curl -sS "$BASE/models/$MODEL/versions/default"
