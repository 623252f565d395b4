#!/usr/bin/env bash
# The image test: builds the scheduler and executor images from the unchanged
# docker/Dockerfile with buildah (no Docker engine needed), runs a scheduler
# and two executors from them on loopback, completes a job through them and
# checks the answer.
#
# The base image debian:bookworm-slim is made locally with debootstrap
# (variant minbase) and its tarball cached outside the checkout, in
# $TESSERA_IMAGE_CACHE (default /var/cache/tessera); buildah keeps the built
# layers and the ccache mount of the build stage, so a second run is quick.
#
# Exit status: 0 = passed, 1 = failed, 77 = could not run here (printed
# loudly as "IMAGE TEST NOT RUN: <reason>"; never reported as a pass).
# Run as root (buildah --isolation chroot needs it).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${TESSERA_IMAGE_CACHE:-/var/cache/tessera}"
MIRROR="${TESSERA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_TAR="$CACHE/debian-bookworm-minbase.tar"
BASE_IMAGE=docker.io/library/debian:bookworm-slim
SCHED_IMAGE=localhost/tessera-scheduler:test
EXEC_IMAGE=localhost/tessera-executor:test
LOGS=""
export BUILDAH_ISOLATION=chroot

start=$(date +%s)
say() { echo "image-test [$(($(date +%s) - start))s]: $*"; }

not_run() {
  {
    echo
    echo "######################################################################"
    echo "##  IMAGE TEST NOT RUN: $*"
    echo "##  The images were NOT built or tested on this machine."
    echo "######################################################################"
    echo
  } >&2
  exit 77
}

fail() {
  echo "image-test: FAILED: $*" >&2
  for f in "${LOGS:-/nonexistent}"/*.log; do
    [[ -f "$f" ]] || continue
    echo "--- $f (last 30 lines)" >&2
    tail -30 "$f" >&2
  done
  exit 1
}

# ---- can this machine run buildah at all? ---------------------------------
[[ $(id -u) -eq 0 ]] || not_run "needs root (buildah --isolation chroot, debootstrap)"
for tool in buildah debootstrap; do
  if ! command -v "$tool" >/dev/null; then
    if ! (export DEBIAN_FRONTEND=noninteractive && apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends buildah debootstrap >/dev/null); then
      not_run "$tool is not installed and apt-get could not install it"
    fi
  fi
done
if ! probe=$(buildah from scratch 2>&1); then
  not_run "'buildah from scratch' fails here: $probe"
fi
buildah rm "$probe" >/dev/null
LOGS="$(mktemp -d /tmp/tessera-image-test.XXXXXX)"

containers=()
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$LOGS"
}
trap cleanup EXIT

# ---- the base image, from Debian packages ---------------------------------
if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  if [[ ! -s "$BASE_TAR" ]]; then
    say "debootstrap --variant=minbase bookworm into $BASE_TAR (once; cached)"
    mkdir -p "$CACHE"
    root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$LOGS/debootstrap.log" 2>&1 ||
      { rm -rf "$root"; not_run "debootstrap failed (no route to $MIRROR?): $(tail -1 "$LOGS/debootstrap.log")"; }
    # Like the official image: deb822 sources with updates and security, no
    # package caches.
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
    tar --numeric-owner -C "$root" -cf "$BASE_TAR.tmp" .
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    rm -rf "$root"
  fi
  say "importing $BASE_TAR as $BASE_IMAGE"
  c=$(buildah from scratch)
  containers+=("$c")
  tar --numeric-owner -C "$(buildah mount "$c")" -xf "$BASE_TAR"
  buildah umount "$c" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd bash --os linux --arch amd64 "$c"
  buildah commit --quiet "$c" "$BASE_IMAGE" >/dev/null
fi

# ---- the images, from the unchanged Dockerfile ----------------------------
COMMIT=$(git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
for target in scheduler executor; do
  image=$SCHED_IMAGE
  [[ $target == executor ]] && image=$EXEC_IMAGE
  say "buildah bud --target $target (log: $LOGS/bud-$target.log)"
  # --layers: the executor build reuses the build stage the scheduler built.
  buildah bud --isolation chroot --layers --pull=never --network host \
    --build-arg TESSERA_COMMIT="$COMMIT" \
    -f docker/Dockerfile --target "$target" -t "$image" . >"$LOGS/bud-$target.log" 2>&1 ||
    fail "building the $target image"
done
say "built: $(buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep tessera- | tr '\n' ' ')"

# ---- run them --------------------------------------------------------------
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}
# buildah run answers a signal by SIGKILLing its command, so signals go to the
# service process itself: the descendant of `buildah run` with that name.
service_pid() {  # <buildah run pid> <comm prefix>
  local queue=("$1") p
  while ((${#queue[@]})); do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    if [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == "$2"* ]]; then
      echo "$p"
      return
    fi
    queue+=($(pgrep -P "$p" || true))
  done
}
entrypoint() {
  buildah inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}' "$1"
}

sched=$(buildah from --pull=never "$SCHED_IMAGE")
containers+=("$sched")
exec_ctr=$(buildah from --pull=never "$EXEC_IMAGE")
containers+=("$exec_ctr")

for c in "$sched" "$exec_ctr"; do
  uid=$(buildah run --isolation chroot "$c" -- id -u)
  [[ "$uid" == 10001 ]] || fail "container $c runs as uid $uid, not the non-root 10001"
done
for bin in "$sched tessera-scheduler" "$sched tessera" "$exec_ctr tessera-executor"; do
  read -r c b <<<"$bin"
  v=$(buildah run --isolation chroot "$c" -- "$b" --version)
  [[ "$v" == "tessera "*" (commit $COMMIT)" ]] || fail "$b --version printed '$v'"
done

read -ra sched_cmd <<<"$(entrypoint "$SCHED_IMAGE")"
read -ra exec_cmd <<<"$(entrypoint "$EXEC_IMAGE")"
[[ ${#sched_cmd[@]} -gt 0 && ${#exec_cmd[@]} -gt 0 ]] || fail "an image has no ENTRYPOINT"

PORT=$(free_port)
MPORT=$(free_port)
say "scheduler (${sched_cmd[*]}) on 127.0.0.1:$PORT, metrics :$MPORT"
buildah run --isolation chroot --network host "$sched" -- "${sched_cmd[@]}" \
  --listen="127.0.0.1:$PORT" --metrics-listen="127.0.0.1:$MPORT" \
  --data-dir=/var/lib/tessera >"$LOGS/scheduler.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$MPORT/metrics" >/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || fail "the scheduler exited"
  sleep 0.1
done
curl -sf "http://127.0.0.1:$MPORT/metrics" >/dev/null || fail "the scheduler did not come up"

exec_ports=()
for i in 1 2; do
  p=$(free_port)
  exec_ports+=("$p")
  buildah run --isolation chroot --network host "$exec_ctr" -- "${exec_cmd[@]}" \
    --scheduler="127.0.0.1:$PORT" --name="image-executor-$i" --slots=2 \
    --metrics-listen="127.0.0.1:$p" >"$LOGS/executor-$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 100); do
  connected=$(curl -sf "http://127.0.0.1:$MPORT/metrics" |
    awk '$1 == "tessera_executors_connected" {print $2}')
  [[ "${connected:-0}" == 2 ]] && break
  sleep 0.1
done
[[ "${connected:-0}" == 2 ]] || fail "2 executors did not connect (connected: ${connected:-none})"
for p in "${exec_ports[@]}"; do
  curl -sf "http://127.0.0.1:$p/metrics" | grep -q '^tessera_' ||
    fail "an executor's /metrics on :$p has no tessera_ metrics"
done

say "submitting primes over [0, 10^6) in 16 shards with the image's own CLI"
buildah run --isolation chroot --network host "$sched" -- tessera \
  --scheduler "127.0.0.1:$PORT" submit --name image-test --task primes \
  --range 0:1000000 --shards 16 --wait >"$LOGS/submit.log" 2>&1 ||
  fail "the job did not succeed"
grep -q '"primes": 78498' "$LOGS/submit.log" || fail "wrong answer: $(cat "$LOGS/submit.log")"
result=$(grep -o 'result: [^ ]*' "$LOGS/submit.log" | cut -d' ' -f2)
[[ "$result" == /var/lib/tessera/results/*.json ]] || fail "unexpected result location '$result'"
buildah run --isolation chroot "$sched" -- cat "$result" | grep -q '"primes": *78498' ||
  fail "the result file $result in the scheduler's container does not hold the answer"

# SIGTERM: the executors drain and exit 0.
say "stopping: SIGTERM to the executors, then the scheduler"
for i in 1 2; do
  pid=$(service_pid "${pids[$i]}" tessera-execut)
  [[ -n "$pid" ]] || fail "no tessera-executor process under buildah run ${pids[$i]}"
  kill -TERM "$pid"
done
for i in 1 2; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  [[ $rc == 0 ]] || fail "executor $i exited $rc after SIGTERM (want 0: drained)"
done
pid=$(service_pid "${pids[0]}" tessera-schedu)
[[ -n "$pid" ]] && kill -TERM "$pid"
wait "${pids[0]}" || true
pids=()
say "PASSED: both images built, ran as uid 10001, and computed primes below 10^6 = 78498"
