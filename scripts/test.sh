#!/usr/bin/env bash
# Installs what is missing, builds with tests (debug preset) and runs every
# test with ctest. Used by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --test
cmake --preset debug
cmake --build --preset debug -j "$(nproc)"
ctest --preset debug -j "$(nproc)" --timeout 300
