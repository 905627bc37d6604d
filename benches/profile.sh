#!/usr/bin/env bash
# Profiles one bench server under valgrind for a fixed number of calls (repeatable counts, not
# times):
#
#   benches/profile.sh callgrind IMPL [CALL] [N]   instructions: total per call, top functions
#   benches/profile.sh dhat IMPL [CALL] [N]        heap allocations by call site
#
# IMPL: omnirelay-grpc | tonic | omnirelay-http | axum | hyper (the floor). CALL: EmptyCall | UnaryCall100B (gRPC)
# or echo100B (HTTP; the default for the HTTP servers). N: calls (default 2000), made with
# h2load at -c1 -m1 after 200 warm-up calls; PROFILE_C and PROFILE_M set other connection and
# stream counts (`PROFILE_C=64 benches/profile.sh callgrind axum echo100B 20000`).
# PROFILE_CACHE=1 adds valgrind's simulated caches (`--cache-sim=yes`: D1, LL misses per
# function; a model of one core, not this machine's caches); PROFILE_BRANCH=1 adds its branch
# predictor model (`--branch-sim=yes`: conditional and indirect branches mispredicted). Builds
# `--profile profiling` (release plus line tables; honours CARGO_TARGET_DIR) and installs
# valgrind with apt-get when missing. Output goes to $PROFILE_OUT (default: <target
# dir>/profile/). PROFILE_PORT sets the port (default 28079).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOL=${1:?usage: profile.sh callgrind|dhat IMPL [CALL] [N]}
IMPL=${2:?usage: profile.sh callgrind|dhat IMPL [CALL] [N]}
case "$IMPL" in
    omnirelay-http|axum|hyper) CALL=${3:-echo100B} ;;
    *) CALL=${3:-EmptyCall} ;;
esac
N=${4:-2000}
WARM=200
PORT=${PROFILE_PORT:-28079}

if ! command -v valgrind >/dev/null 2>&1 || ! command -v h2load >/dev/null 2>&1; then
    SUDO=""; [[ $(id -u) == 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind nghttp2-client >/dev/null
fi

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR = /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
cargo build -q --profile profiling -p omnirelay-benches --bin bench-server --bin bench-stats
BIN="$TARGET_DIR/profiling"
OUT=${PROFILE_OUT:-$TARGET_DIR/profile}
mkdir -p "$OUT"
"$BIN/bench-stats" bodies "$OUT"
TAG="$TOOL-$IMPL-$CALL"

GRPC_H=(-H 'content-type: application/grpc' -H 'te: trailers')
HTTP_H=(--h1 -H 'content-type: application/octet-stream' -H 'rpc-caller: wrk' -H 'rpc-service: bench'
    -H 'rpc-procedure: echo' -H 'rpc-encoding: raw' -H 'context-ttl-ms: 5000')
case "$CALL" in
    EmptyCall) LOAD=("${GRPC_H[@]}" -d "$OUT/empty.bin" "http://127.0.0.1:$PORT/grpc.testing.TestService/EmptyCall") ;;
    UnaryCall100B) LOAD=("${GRPC_H[@]}" -d "$OUT/unary.bin" "http://127.0.0.1:$PORT/grpc.testing.TestService/UnaryCall") ;;
    echo100B) LOAD=("${HTTP_H[@]}" -d "$OUT/echo.bin" "http://127.0.0.1:$PORT/") ;;
    *) echo "unknown call $CALL" >&2; exit 2 ;;
esac

case "$TOOL" in
    callgrind) VG=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$OUT/$TAG.out")
        [[ -n ${PROFILE_CACHE:-} ]] && VG+=(--cache-sim=yes)
        [[ -n ${PROFILE_BRANCH:-} ]] && VG+=(--branch-sim=yes) ;;
    dhat) VG=(valgrind --tool=dhat "--dhat-out-file=$OUT/$TAG.json") ;;
    *) echo "unknown tool $TOOL" >&2; exit 2 ;;
esac

"${VG[@]}" "$BIN/bench-server" --impl "$IMPL" --port "$PORT" >"$OUT/$TAG.stdout" 2>"$OUT/$TAG.stderr" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    grep -q '^listening' "$OUT/$TAG.stdout" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { cat "$OUT/$TAG.stderr" >&2; exit 1; }
    sleep 0.1
done
grep -q '^listening' "$OUT/$TAG.stdout" || { echo "server did not start" >&2; exit 1; }

timeout 300 h2load -n "$WARM" -c 1 -m 1 -t 1 "${LOAD[@]}" >/dev/null
[[ $TOOL == callgrind ]] && callgrind_control -i on "$PID" >/dev/null 2>&1
timeout 600 h2load -n "$N" -c "${PROFILE_C:-1}" -m "${PROFILE_M:-1}" -t 1 "${LOAD[@]}" >"$OUT/$TAG.h2load.txt"
[[ $TOOL == callgrind ]] && callgrind_control -i off "$PID" >/dev/null 2>&1
grep -q "$N succeeded" "$OUT/$TAG.h2load.txt" || { echo "not every call succeeded" >&2; exit 1; }
kill -TERM "$PID"
wait "$PID" || true
trap - EXIT

if [[ $TOOL == callgrind ]]; then
    callgrind_annotate --inclusive=yes "$OUT/$TAG.out" >"$OUT/$TAG.inclusive.txt" 2>/dev/null
    callgrind_annotate --inclusive=no "$OUT/$TAG.out" >"$OUT/$TAG.exclusive.txt" 2>/dev/null
    total=$(awk '/^summary:|^events: Ir/ {next} /PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$OUT/$TAG.exclusive.txt")
    echo "$IMPL $CALL: $total instructions over $N calls = $(( total / N )) per call (connection setup included, warm-up excluded)"
    echo "top exclusive: $OUT/$TAG.exclusive.txt; top inclusive: $OUT/$TAG.inclusive.txt"
else
    echo "$IMPL $CALL (dhat counts include start-up and $WARM warm-up calls; per-call sites are the ones near whole numbers):"
    "$BIN/bench-stats" dhat "$OUT/$TAG.json" "$((N + WARM))" 40 | tee "$OUT/$TAG.sites.txt"
fi
