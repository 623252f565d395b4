#!/usr/bin/env bash
# The image test: builds the scheduler and executor images from the unchanged
# docker/Dockerfile with buildah (no Docker engine needed), runs a scheduler
# and two executors from them on loopback, completes a job through them and
# checks the answer. The run is the production one (docs/security.md): TLS
# on the scheduler's port, one executor with a client certificate and one
# with a token, the CLI with the CA and a submitter token; certificates and
# tokens are made for the run (tests/util/make-test-certs.sh, openssl) and
# mounted into the containers, never committed. Also: each binary's --help
# lists the security flags, and the scheduler refuses 0.0.0.0 with no
# credentials.
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
for tool in buildah debootstrap openssl; do
  if ! command -v "$tool" >/dev/null; then
    if ! (export DEBIAN_FRONTEND=noninteractive && apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends buildah debootstrap openssl >/dev/null); then
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
# buildah run in the foreground, once more (up to 3 tries) when buildah itself
# fails to start the command: its chroot isolation re-executes buildah from a
# sealed in-memory copy, and sealing it fails now and then with EBUSY
# ("sealing memfd copy: Device or resource busy") before the command runs.
brun() {
  local err rc attempt
  err=$(mktemp)
  for attempt in 1 2 3; do
    rc=0
    buildah run "$@" 2>"$err" || rc=$?
    if ((rc != 0 && attempt < 3)) && grep -q "sealing memfd copy" "$err"; then
      say "buildah could not start the command (try $attempt): $(tail -1 "$err")" >&2
      sleep 1
      continue
    fi
    break
  done
  cat "$err" >&2
  rm -f "$err"
  return "$rc"
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
  uid=$(brun --isolation chroot "$c" -- id -u)
  [[ "$uid" == 10001 ]] || fail "container $c runs as uid $uid, not the non-root 10001"
done
for bin in "$sched tessera-scheduler" "$sched tessera" "$exec_ctr tessera-executor"; do
  read -r c b <<<"$bin"
  v=$(brun --isolation chroot "$c" -- "$b" --version)
  [[ "$v" == "tessera "*" (commit $COMMIT)" ]] || fail "$b --version printed '$v'"
done

read -ra sched_cmd <<<"$(entrypoint "$SCHED_IMAGE")"
read -ra exec_cmd <<<"$(entrypoint "$EXEC_IMAGE")"
[[ ${#sched_cmd[@]} -gt 0 && ${#exec_cmd[@]} -gt 0 ]] || fail "an image has no ENTRYPOINT"

# ---- the security flags are there, and the default is safe ----------------
help_lists() {  # <binary> <its --help text> <flag>...
  local what=$1 text=$2 flag
  shift 2
  for flag in "$@"; do
    grep -q -- "$flag" <<<"$text" || fail "$what --help does not list $flag"
  done
}
help_lists tessera-scheduler \
  "$(brun --isolation chroot "$sched" -- "${sched_cmd[@]}" --help 2>&1 || true)" \
  "--tls_cert " "--tls_key " "--tls_client_ca " "--tls_refresh " "--auth_tokens_file " \
  "--insecure "
help_lists tessera-executor \
  "$(brun --isolation chroot "$exec_ctr" -- "${exec_cmd[@]}" --help 2>&1 || true)" \
  "--tls_ca " "--tls_cert " "--tls_key " "--auth_token_file "
help_lists tessera "$(brun --isolation chroot "$sched" -- tessera --help 2>&1 || true)" \
  "--tls-ca " "--token-file " "--token "
say "safe by default: the scheduler must refuse 0.0.0.0 with neither TLS nor tokens"
rc=0
timeout 30 buildah run --isolation chroot --network host "$sched" -- "${sched_cmd[@]}" \
  --listen="0.0.0.0:$(free_port)" --metrics-listen= --data-dir=/var/lib/tessera \
  >"$LOGS/refused.log" 2>&1 || rc=$?
[[ $rc == 1 ]] && grep -q -- "--insecure" "$LOGS/refused.log" ||
  fail "0.0.0.0 without credentials: want exit 1 naming --insecure, got $rc: $(tail -2 "$LOGS/refused.log")"

# ---- TLS material and tokens for this run ----------------------------------
# The tests' own recipe: ca.pem, server.pem/.key (SANs IP:127.0.0.1,
# DNS:localhost), executor-a.pem/.key (a client certificate, SAN executor-a).
PKI="${LOGS:?}/pki"
bash tests/util/make-test-certs.sh "$PKI" >/dev/null || fail "making the test certificates"
for name in ci reader executors; do openssl rand -hex 32 >"$PKI/$name.token"; done
token_hash() { printf %s "$(cat "$PKI/$1.token")" | sha256sum | cut -d' ' -f1; }
printf '{"tokens": [\n%s,\n%s,\n%s\n]}\n' \
  "{\"name\": \"ci\", \"role\": \"submitter\", \"queues\": [\"default\"], \"sha256\": \"$(token_hash ci)\"}" \
  "{\"name\": \"reader\", \"role\": \"reader\", \"sha256\": \"$(token_hash reader)\"}" \
  "{\"name\": \"executors\", \"role\": \"executor\", \"sha256\": \"$(token_hash executors)\"}" \
  >"$PKI/tokens.json"
# Readable by the images' user only, like a Secret volume with the pod's fsGroup.
chown -R 10001:10001 "$PKI"
chmod 0700 "$PKI"
find "$PKI" -type f -exec chmod 0600 {} +
P=/etc/tessera/pki
pki_mount=(--volume "$PKI:$P:ro")

PORT=$(free_port)
MPORT=$(free_port)
say "scheduler (${sched_cmd[*]}) on 127.0.0.1:$PORT: TLS, client CA, tokens; metrics :$MPORT"
buildah run --isolation chroot --network host "${pki_mount[@]}" "$sched" -- "${sched_cmd[@]}" \
  --listen="127.0.0.1:$PORT" --metrics-listen="127.0.0.1:$MPORT" \
  --data-dir=/var/lib/tessera --tls-cert=$P/server.pem --tls-key=$P/server.key \
  --tls-client-ca=$P/ca.pem --auth-tokens-file=$P/tokens.json >"$LOGS/scheduler.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$MPORT/metrics" >/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || fail "the scheduler exited"
  sleep 0.1
done
curl -sf "http://127.0.0.1:$MPORT/metrics" >/dev/null || fail "the scheduler did not come up"

# Executor 1 proves who it is with a client certificate (mTLS), executor 2
# with a token of role executor.
exec_ports=()
exec_creds=("--tls-cert=$P/executor-a.pem --tls-key=$P/executor-a.key"
  "--auth-token-file=$P/executors.token")
for i in 1 2; do
  p=$(free_port)
  exec_ports+=("$p")
  read -ra creds <<<"${exec_creds[$((i - 1))]}"
  buildah run --isolation chroot --network host "${pki_mount[@]}" "$exec_ctr" -- \
    "${exec_cmd[@]}" --scheduler="127.0.0.1:$PORT" --name="image-executor-$i" --slots=2 \
    --metrics-listen="127.0.0.1:$p" --tls-ca=$P/ca.pem "${creds[@]}" \
    >"$LOGS/executor-$i.log" 2>&1 &
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
  # (Read whole before grep: grep -q stops early and, with pipefail, curl's
  # SIGPIPE would fail the check.)
  executor_metrics=$(curl -sf "http://127.0.0.1:$p/metrics") || executor_metrics=""
  grep -q '^tessera_' <<<"$executor_metrics" ||
    fail "an executor's /metrics on :$p has no tessera_ metrics"
done

for who in executor-a executors; do  # the log line follows the connection
  for _ in $(seq 1 50); do
    grep -q "connected name=image-executor-[12] identity=$who " "$LOGS/scheduler.log" && break
    sleep 0.1
  done
  grep -q "connected name=image-executor-[12] identity=$who " "$LOGS/scheduler.log" ||
    fail "the scheduler logged no executor connected as identity=$who"
done

# The image's own CLI over TLS: refused without a token (UNAUTHENTICATED) and
# with a reader's for a submit (PERMISSION_DENIED), both with exit 3.
cli() {
  brun --isolation chroot --network host "${pki_mount[@]}" "$sched" -- tessera \
    --scheduler "127.0.0.1:$PORT" --tls-ca $P/ca.pem "$@"
}
expect_refused() {  # <log file> <status name> <CLI args>...
  local log=$1 want=$2 rc=0
  shift 2
  cli "$@" >"$LOGS/$log" 2>&1 || rc=$?
  [[ $rc == 3 ]] && grep -q "$want" "$LOGS/$log" ||
    fail "tessera $*: want exit 3 and $want, got $rc: $(cat "$LOGS/$log")"
}
expect_refused no-token.log UNAUTHENTICATED queue
expect_refused reader.log PERMISSION_DENIED --token-file $P/reader.token \
  submit --task noop --range 0:10 --shards 1

say "submitting primes over [0, 10^6) in 16 shards with the image's own CLI (TLS, submitter token)"
cli --token-file $P/ci.token submit --name image-test --task primes \
  --range 0:1000000 --shards 16 --wait >"$LOGS/submit.log" 2>&1 ||
  fail "the job did not succeed"
grep -q '"primes": 78498' "$LOGS/submit.log" || fail "wrong answer: $(cat "$LOGS/submit.log")"
result=$(grep -o 'result: [^ ]*' "$LOGS/submit.log" | cut -d' ' -f2)
[[ "$result" == /var/lib/tessera/results/*.json ]] || fail "unexpected result location '$result'"
brun --isolation chroot "$sched" -- cat "$result" | grep -q '"primes": *78498' ||
  fail "the result file $result in the scheduler's container does not hold the answer"
grep -q "audit: SubmitJob job=[0-9a-f]* by ci" "$LOGS/scheduler.log" ||
  fail "the scheduler's log has no audit line naming the submitter ci"
scheduler_metrics=$(curl -sf "http://127.0.0.1:$MPORT/metrics") || scheduler_metrics=""
grep -q '^tessera_results_rejected_total{reason="leased_to_another"} 0' \
  <<<"$scheduler_metrics" ||
  fail "the scheduler's /metrics lacks tessera_results_rejected_total{reason=\"leased_to_another\"} 0"

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
for name in ci reader executors; do
  if grep -qF "$(cat "$PKI/$name.token")" "$LOGS"/*.log; then
    fail "the $name token appears in a log"
  fi
done
say "PASSED: both images built, ran as uid 10001, refused 0.0.0.0 without credentials," \
  "and over TLS (executors by certificate and by token, a submitter token) computed" \
  "primes below 10^6 = 78498"
