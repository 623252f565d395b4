#!/usr/bin/env bash
# Installs what is missing, builds with tests (debug preset) and runs every
# test with ctest, then the fuzz targets (fuzz preset). Used by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --test
cmake --preset debug
cmake --build --preset debug -j "$(nproc)"
ctest --preset debug -j "$(nproc)" --timeout 300

# Sanitizers (README "Tests"): the unit and service tests again, built with
# clang-14 under ASan + UBSan; clang's thread-safety analysis fails this build
# on a locking-annotation breach. (The e2e tests run in the debug build above.)
cmake --preset asan
cmake --build --preset asan -j "$(nproc)"
ctest --preset asan -j "$(nproc)" --timeout 300

# Fuzzing (tests/fuzz, README "Fuzzing"): the fuzz preset builds only the
# libFuzzer targets and what they link, with clang; each target replays its
# seeds and regressions, then fuzzes for TESSERA_FUZZ_SECONDS (45 s). Inputs
# that crash until a pending fix lands (label "pending") are left out.
cmake --preset fuzz
cmake --build --preset fuzz -j "$(nproc)"
ctest --preset fuzz -j "$(nproc)" --label-exclude pending --timeout 900

# The replica-scaling figures from the e2e_scaling test's output.
grep -h '^scaling: shards/s' build/debug/Testing/Temporary/LastTest.log 2>/dev/null || true

# Deployment (docs/deploy.md): every kustomize overlay renders and validates,
# then the container images are built and run (buildah). The image test exits
# 77 when this machine cannot run buildah; that is repeated below, loudly.
bash scripts/validate-k8s.sh
image_status=0
bash scripts/image-test.sh || image_status=$?
if ((image_status == 77)); then
  echo "test: all other tests passed, but the IMAGE TEST WAS NOT RUN (reason above)" >&2
elif ((image_status != 0)); then
  exit "$image_status"
fi
