#!/usr/bin/env bash
# .ci/interop.sh: OmniRelay's gRPC interop checks against third-party clients and servers.
#
#   1. installs what is needed (Debian packages, the grpc-go interop client/server, the grpcio venv)
#   2. cargo build --release -p omnirelay-examples --bin interop-server --bin interop-client
#   3. OmniRelay interop-server  <- grpc-go interop client (14 cases), Python grpcio (7 checks),
#                                   OmniRelay interop-client (14 cases), and over YARPC-HTTP
#                                   (--http-port): OmniRelay interop-client --transport http
#                                   (14 cases) and curl (the unary JSON call of the README)
#   4. grpc-go reference server  <- OmniRelay interop-client (14 cases)
#
# Run from anywhere inside the repo; shared/ is expected beside the repo root (../shared).
# Ends with "interop: N passed, M failed" and exits non-zero if anything failed.
#
# Environment knobs (all optional):
#   SHARED                 path of the shared/ folder     (default: <repo>/../shared, then /work/shared)
#   INTEROP_VENV           Python venv with grpcio        (default: $HOME/.cache/omnirelay-interop/pyenv)
#   INTEROP_LOGDIR         where step logs go             (default: a fresh mktemp -d)
#   INTEROP_START_TIMEOUT  seconds to wait for a server to accept TCP connections (default 30)
#   INTEROP_CHECK_TIMEOUT  seconds one client run may take (default 300)
#   INTEROP_SKIP_BUILD=1   skip the cargo build (use with the two below)
#   INTEROP_SERVER_BIN / INTEROP_CLIENT_BIN   binaries to use instead of <target>/release/interop-{server,client}
set -euo pipefail
exec </dev/null   # CI has no stdin; never let a tool wait on it (and keep fd 0 from being reused)

ROOT=$(git rev-parse --show-toplevel 2>/dev/null) || ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ -z "${SHARED:-}" ]; then
  SHARED=$ROOT/../shared
  # a throw-away clone (git clone . /tmp/x) has no shared/ beside it; fall back to the workplace's copy
  [ -d "$SHARED/interop" ] || [ ! -d /work/shared/interop ] || SHARED=/work/shared
fi
[ -d "$SHARED/interop" ] || { echo "interop: ERROR: no interop/ under SHARED=$SHARED (set SHARED=/path/to/shared)" >&2; exit 2; }
SHARED=$(cd "$SHARED" && pwd)
INTEROP=$SHARED/interop
GRPC_INTEROP=$INTEROP/grpc-interop.sh
PY_SMOKE=$INTEROP/py-smoke.py

export HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
export DEBIAN_FRONTEND=noninteractive
VENV=${INTEROP_VENV:-$HOME/.cache/omnirelay-interop/pyenv}
START_TIMEOUT=${INTEROP_START_TIMEOUT:-30}
CHECK_TIMEOUT=${INTEROP_CHECK_TIMEOUT:-300}   # per check; each should take seconds
LOGDIR=${INTEROP_LOGDIR:-$(mktemp -d -t omnirelay-interop.XXXXXX)}
mkdir -p "$LOGDIR"
APT_PKGS=(golang-go golang-google-grpc-dev protobuf-compiler protoc-gen-go-1-3 protoc-gen-go-grpc nghttp2-client curl)
GRPCIO=grpcio==1.85.3 GRPCIO_TOOLS=grpcio-tools==1.85.1

T_START=$SECONDS
RESULTS=() NPASS=0 NFAIL=0
BG_PIDS=()

section() { printf '\n==== %s ====\n' "$*"; }
log() { printf '[interop] %s\n' "$*"; }
record() {  # PASS|FAIL name detail
  RESULTS+=("$(printf '%-4s %-44s %s' "$1" "$2" "$3")")
  if [ "$1" = PASS ]; then NPASS=$((NPASS + 1)); else NFAIL=$((NFAIL + 1)); fi
}
SUMMARY_DONE=
summary() {
  SUMMARY_DONE=1
  section "interop summary (logs: $LOGDIR, $((SECONDS - T_START))s in all)"
  local r
  for r in "${RESULTS[@]}"; do echo "$r"; done
  echo "interop: $NPASS passed, $NFAIL failed"
}
fatal() {  # setup step failed: nothing after it can run
  record FAIL "$1" "$2"
  log "ERROR: $1: $2"
  [ -n "${3:-}" ] && [ -f "$3" ] && { log "last lines of $3:"; tail -n 40 "$3"; }
  summary
  exit 1
}

# ---------------------------------------------------------------- background processes + cleanup
is_alive() {  # pid: running and not a zombie
  [ -e "/proc/$1" ] || return 1
  ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
descendants() {  # pid -> all descendant pids, depth first
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}
tree_of() {  # pid... -> those pids, their descendants, and every process in a group or session
  local p                  # one of them leads (a double-forked grandchild leaves the tree, not those)
  { for p in "$@"; do echo "$p"; descendants "$p"; done; echo --; ps -e -o pid=,pgid=,sid= 2>/dev/null; } |
    awk '$1 == "--" { procs = 1; next }
         !procs { tree[$1] = 1; next }
         ($1 in tree) || ($2 in tree) || ($3 in tree) { print $1 }' | sort -un
}
# Everything this run starts carries this token in its environment; the final sweep finds by it
# what left both the tree and the group (e.g. a step's 'timeout' orphaned when its parent died).
export OMNIRELAY_INTEROP_RUN="$$.$(date +%s%N).$RANDOM"
tagged() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] && continue
    grep -qxz "OMNIRELAY_INTEROP_RUN=$OMNIRELAY_INTEROP_RUN" "$d/environ" 2>/dev/null && echo "$pid"
  done
}
kill_found() {  # finder args...: TERM what finder prints, wait up to 5 s, then KILL whatever is left
  local finder=$1 p i pids=(); shift
  for p in $("$finder" "$@"); do is_alive "$p" && pids+=("$p"); done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for i in $(seq 50); do
    pids=()
    for p in $("$finder" "$@"); do is_alive "$p" && pids+=("$p"); done
    [ ${#pids[@]} -gt 0 ] || break
    sleep 0.1
  done
  if [ ${#pids[@]} -gt 0 ]; then
    log "still running 5 s after SIGTERM, sending SIGKILL: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
}
kill_tree() {  # pid...: the pids, their descendants and their groups/sessions
  local p
  kill_found tree_of "$@"
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
start_bg() {  # logfile cmd... -> BG_PID; own session + process group (setsid does not fork here:
  local logf=$1; shift  # a background child of a non-interactive shell is no group leader)
  setsid "$@" >"$logf" 2>&1 &
  BG_PID=$!
  BG_PIDS+=("$BG_PID")
}
stop_bg() {  # pid
  local p keep=()
  kill_tree "$1"
  for p in "${BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  BG_PIDS=(${keep[@]+"${keep[@]}"})
}
FG_PID=
run() {  # cmd...: run in the background and wait, so that INT/TERM are acted on at once, not after it
  local rc=0
  "$@" &
  FG_PID=$!
  wait "$FG_PID" || rc=$?
  FG_PID=
  return $rc
}
tee_to() { local logf=$1; shift; "$@" 2>&1 | tee "$logf"; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$FG_PID" ] || [ ${#BG_PIDS[@]} -gt 0 ]; then
    kill_tree $FG_PID ${BG_PIDS[@]+"${BG_PIDS[@]}"}
  fi
  kill_found tagged
  [ $rc -eq 0 ] || [ ${#RESULTS[@]} -eq 0 ] || [ -n "$SUMMARY_DONE" ] || { record FAIL "(run stopped early)" "exit $rc"; summary; }
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
free_port() {  # a port free on every IPv4 address (the grpc-go server listens on ":PORT"), not in $1
  local p
  while :; do
    p=$(timeout 10 python3 -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1]); s.close()')
    [ "$p" != "${1:-}" ] && { echo "$p"; return; }
  done
}
wait_port() {  # port pid name logfile: until 127.0.0.1:port accepts TCP, the process dies, or START_TIMEOUT
  local port=$1 pid=$2 name=$3 logf=$4 deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if ! is_alive "$pid"; then
      log "$name exited before accepting connections on port $port; last lines of $logf:"; tail -n 40 "$logf"; return 1
    fi
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
      log "$name accepts connections on 127.0.0.1:$port (after $((SECONDS + START_TIMEOUT - deadline))s)"; return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "$name did not accept connections on 127.0.0.1:$port within ${START_TIMEOUT}s; last lines of $logf:"
      tail -n 40 "$logf"; return 1
    fi
    sleep 0.2
  done
}
check() {  # name expected-line timeout cmd...: run, show + log output, need rc 0 and the expected line
  local name=$1 expect=$2 tmo=$3; shift 3
  local logf t0=$SECONDS rc=0 dt
  logf=$LOGDIR/$(printf '%s' "$name" | tr -c 'A-Za-z0-9_.-' '_' | tr -s '_').log
  section "$name"
  echo "+ $*"
  run tee_to "$logf" timeout -k 10 "$tmo" "$@" || rc=$?
  dt=$((SECONDS - t0))
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    record FAIL "$name" "timed out after ${tmo}s"
  elif [ $rc -ne 0 ]; then
    record FAIL "$name" "exit code $rc (${dt}s)"
  elif ! grep -Eq "(^|[^0-9])$expect" "$logf"; then
    record FAIL "$name" "exit 0 but no '$expect' line (${dt}s)"
  else
    record PASS "$name" "$expect (${dt}s)"
    return 0
  fi
  log "FAIL $name (see $logf)"
  return 0   # keep going: every check runs, the summary decides the exit code
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else echo "need root for: $*" >&2; return 1; fi; }
APT_UPDATED=0
apt_install() {  # pkg...: install those not installed yet; apt-get update at most once per run
  local missing=() p logf=$LOGDIR/apt.log
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "apt: already installed: $*"; return 0; fi
  if [ $APT_UPDATED = 0 ]; then
    log "apt-get update"
    run as_root timeout 600 apt-get -q -o DPkg::Lock::Timeout=120 update >>"$logf" 2>&1 ||
      { log "apt-get update failed"; return 1; }
    APT_UPDATED=1
  fi
  log "apt-get install -y ${missing[*]}"
  run as_root timeout 1200 apt-get -q -y -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=120 install "${missing[@]}" >>"$logf" 2>&1 ||
    { log "apt-get install ${missing[*]} failed"; return 1; }
}
venv_ok() {
  [ -x "$VENV/bin/python" ] && timeout 60 "$VENV/bin/python" - "$GRPCIO" "$GRPCIO_TOOLS" <<'EOF' >/dev/null 2>&1
import sys, importlib.metadata as md
import grpc, grpc_tools.protoc  # noqa: F401  (the venv must really work, not just list them)
want = dict(a.split("==") for a in sys.argv[1:])
sys.exit(0 if all(md.version(k) == v for k, v in want.items()) else 1)
EOF
}
make_venv() {
  local logf=$LOGDIR/venv.log
  if venv_ok; then log "venv $VENV has $GRPCIO $GRPCIO_TOOLS"; return 0; fi
  log "creating venv $VENV with $GRPCIO $GRPCIO_TOOLS"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  if ! timeout 300 python3 -m venv "$VENV" >>"$logf" 2>&1; then
    # Debian's own python3 needs python3-venv for ensurepip
    log "python3 -m venv failed; trying Debian's python3 with python3-venv"
    rm -rf "$VENV"
    apt_install python3-venv && timeout 300 /usr/bin/python3 -m venv "$VENV" >>"$logf" 2>&1 || return 1
  fi
  run timeout 900 "$VENV/bin/pip" install -q --disable-pip-version-check "$GRPCIO" "$GRPCIO_TOOLS" >>"$logf" 2>&1 || return 1
  venv_ok
}

# ---------------------------------------------------------------- 1. install
section "install: Debian packages, grpc-go interop client/server, Python grpcio venv"
log "repo $ROOT, shared $SHARED, logs $LOGDIR"
t0=$SECONDS
apt_install "${APT_PKGS[@]}" || fatal install "apt-get failed" "$LOGDIR/apt.log"
# build the grpc-go binaries now, so that '--serve' later starts at once (its first run builds, ~40 s)
run timeout 1200 bash "$GRPC_INTEROP" --build-only >"$LOGDIR/grpc-go-build.log" 2>&1 ||
  fatal install "grpc-interop.sh --build-only failed" "$LOGDIR/grpc-go-build.log"
log "grpc-go interop binaries: $(tr '\n' ' ' <"$LOGDIR/grpc-go-build.log" | grep -o '/[^ ]*grpc-interop-[a-z]*' | tr '\n' ' ')"
make_venv || fatal install "python venv with $GRPCIO $GRPCIO_TOOLS failed" "$LOGDIR/venv.log"
record PASS install "($((SECONDS - t0))s)"

# ---------------------------------------------------------------- 2. build
section "build: cargo build --release -p omnirelay-examples --bin interop-server --bin interop-client"
t0=$SECONDS
if [ "${INTEROP_SKIP_BUILD:-0}" = 1 ]; then
  log "INTEROP_SKIP_BUILD=1: not building"
else
  run tee_to "$LOGDIR/cargo-build.log" timeout -k 30 3000 \
    cargo build --release -p omnirelay-examples --bin interop-server --bin interop-client ||
    fatal build "cargo build failed (exit $?)"
fi
TARGET_DIR=$(timeout 120 cargo metadata --format-version 1 --no-deps 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null) || TARGET_DIR=
[ -n "$TARGET_DIR" ] || TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER_BIN=${INTEROP_SERVER_BIN:-$TARGET_DIR/release/interop-server}
CLIENT_BIN=${INTEROP_CLIENT_BIN:-$TARGET_DIR/release/interop-client}
for b in "$SERVER_BIN" "$CLIENT_BIN"; do [ -x "$b" ] || fatal build "missing binary $b"; done
record PASS build "($((SECONDS - t0))s)"

# ---------------------------------------------------------------- 3. OmniRelay interop-server
P=$(free_port)
H=$(free_port "$P")
section "start: OmniRelay interop-server --port $P --http-port $H"
SRV_LOG=$LOGDIR/omnirelay-server.log
start_bg "$SRV_LOG" timeout -k 10 1800 "$SERVER_BIN" --port "$P" --http-port "$H"
SRV_PID=$BG_PID
if wait_port "$P" "$SRV_PID" interop-server "$SRV_LOG" && wait_port "$H" "$SRV_PID" interop-server "$SRV_LOG"; then
  record PASS "start omnirelay interop-server" "gRPC port $P, HTTP port $H"
  check "grpc-go client -> omnirelay server" "14 passed, 0 failed" "$CHECK_TIMEOUT" \
    bash "$GRPC_INTEROP" --server_host=127.0.0.1 --server_port="$P" --timeout=15
  check "python grpcio -> omnirelay server" "7 passed, 0 failed" "$CHECK_TIMEOUT" \
    "$VENV/bin/python" "$PY_SMOKE" "127.0.0.1:$P"
  check "omnirelay client -> omnirelay server" "14 passed, 0 failed" "$CHECK_TIMEOUT" \
    "$CLIENT_BIN" --server_host 127.0.0.1 --server_port "$P" --test_cases all
  check "omnirelay client (http) -> omnirelay server" "14 passed, 0 failed" "$CHECK_TIMEOUT" \
    "$CLIENT_BIN" --server_host 127.0.0.1 --server_port "$H" --transport http --test_cases all
  check "curl (yarpc-http json) -> omnirelay server" '"AAAAAAAAAAA="' 60 \
    curl -sS --fail-with-body --max-time 20 -X POST -H 'Rpc-Caller: curl' -H 'Rpc-Service: interop' \
    -H 'Rpc-Procedure: grpc.testing.TestService::UnaryCall' -H 'Rpc-Encoding: json' \
    -H 'Context-TTL-MS: 1000' -d '{"responseSize": 8}' "http://127.0.0.1:$H/"
  if ! is_alive "$SRV_PID"; then
    record FAIL "omnirelay interop-server stayed up" "exited during the checks (see $SRV_LOG)"
    tail -n 40 "$SRV_LOG"
  fi
else
  record FAIL "start omnirelay interop-server" "not accepting connections on port $P (see $SRV_LOG)"
  for c in "grpc-go client -> omnirelay server" "python grpcio -> omnirelay server" "omnirelay client -> omnirelay server" \
    "omnirelay client (http) -> omnirelay server" "curl (yarpc-http json) -> omnirelay server"; do
    record FAIL "$c" "not run: the server did not start"
  done
fi
stop_bg "$SRV_PID"

# ---------------------------------------------------------------- 4. grpc-go reference server
Q=$(free_port "$P")
section "start: grpc-go reference interop server --port=$Q"
GO_LOG=$LOGDIR/grpc-go-server.log
# grpc-interop.sh --serve execs the server binary in place (same pid, same process group)
start_bg "$GO_LOG" timeout -k 10 1800 bash "$GRPC_INTEROP" --serve="$Q"
GO_PID=$BG_PID
if wait_port "$Q" "$GO_PID" grpc-go-server "$GO_LOG"; then
  record PASS "start grpc-go reference server" "port $Q"
  check "omnirelay client -> grpc-go server" "14 passed, 0 failed" "$CHECK_TIMEOUT" \
    "$CLIENT_BIN" --server_host 127.0.0.1 --server_port "$Q" --test_cases all
else
  record FAIL "start grpc-go reference server" "not accepting connections on port $Q (see $GO_LOG)"
  record FAIL "omnirelay client -> grpc-go server" "not run: the server did not start"
fi
stop_bg "$GO_PID"

summary
[ "$NFAIL" -eq 0 ]
