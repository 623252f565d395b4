#!/usr/bin/env bash
# Installs the Debian 12 packages Tessera needs to build, test and run.
# Usage: scripts/install-deps.sh [--test]
#   --test  also installs what the test suite needs (buf from npm into .tools/).
# Only packages that are missing are installed; a second run is a no-op.
set -euo pipefail

cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git clang-format
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libspdlog-dev libfmt-dev prometheus-cpp-dev nlohmann-json3-dev libcli11-dev
  libsqlite3-dev libpq-dev libssl-dev libcurl4-openssl-dev libgtest-dev libgmock-dev curl procps python3
  openssl  # the tests make their TLS certificates at run time
  prometheus  # promtool and a Prometheus server for the observability tests
  postgresql  # a throwaway server for the PostgreSQL store's tests (tests/util/postgres_server.h)
)
# buildah + debootstrap: the image test (scripts/image-test.sh). The Python
# client's tests (tests/python): grpcio, protobuf and pytest for Python, a venv
# with pip for its install test, openssl for its TLS test. clang-14 and
# libclang-rt-14-dev: the fuzz preset (libFuzzer, ASan, UBSan; tests/fuzz).
TEST_PACKAGES=(nodejs npm buildah debootstrap python3-grpcio python3-protobuf python3-pytest
  python3-venv python3-pip openssl clang-14 libclang-rt-14-dev)

want=("${PACKAGES[@]}")
if [[ "${1:-}" == "--test" ]]; then
  want+=("${TEST_PACKAGES[@]}")
fi

missing=()
for p in "${want[@]}"; do
  # node/npm may come from outside Debian's packages; accept them when on PATH.
  if [[ "$p" == nodejs ]] && command -v node >/dev/null; then continue; fi
  if [[ "$p" == npm ]] && command -v npm >/dev/null; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages and not root; run as root or install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--test" ]]; then
  if [[ ! -x .tools/node_modules/.bin/buf ]]; then
    echo "install-deps: installing @bufbuild/buf into .tools/"
    mkdir -p .tools
    (cd .tools && [[ -f package.json ]] || echo '{"name":"tessera-tools","private":true}' > package.json)
    (cd .tools && npm install --no-audit --no-fund --silent @bufbuild/buf@1 >/dev/null)
  fi
  # kubernetes-models (+ the KEDA, Prometheus Operator and cert-manager CRD
  # models, yaml): schema validation of the rendered k8s/ manifests
  # (scripts/validate-k8s.sh).
  if [[ ! -d .tools/node_modules/@kubernetes-models/cert-manager ]]; then
    echo "install-deps: installing kubernetes-models into .tools/"
    (cd .tools && npm install --no-audit --no-fund --silent kubernetes-models@4 \
      @kubernetes-models/keda@2 @kubernetes-models/prometheus-operator@6 \
      @kubernetes-models/cert-manager@6 yaml@2 >/dev/null)
  fi
  # An S3-compatible server that checks SigV4 signatures, for the S3 result
  # sink's tests (tests/util/s3rver.js starts it on 127.0.0.1).
  if [[ ! -d .tools/node_modules/@20minutes/s3rver ]]; then
    echo "install-deps: installing @20minutes/s3rver into .tools/"
    (cd .tools && npm install --no-audit --no-fund --silent @20minutes/s3rver@5 >/dev/null)
  fi
fi
