#!/usr/bin/env bash
# Side-by-side benchmarks: OmniRelay gRPC vs tonic 0.14 (h2load) and OmniRelay YARPC-HTTP vs
# axum 0.8 (wrk), interleaved over rounds on this machine, plus heap allocations per call. The
# HTTP rows also measure the floor: bare hyper echoing the body.
#
#   benches/run.sh            full run (4 rounds; about 4 minutes after the build on 2 cores)
#   benches/run.sh --quick    CI smoke: 1 round, small counts (well under 2 minutes after the build)
#   benches/run.sh --no-build use the binaries already built
#   benches/run.sh --grpc     only the gRPC rows (and their allocations); --http only the HTTP ones
#   ROUNDS=40 BENCH_OUT=DIR benches/run.sh --grpc   more rounds; results in DIR, which is
#                             replaced (refused when it holds anything but an earlier run's)
#
# Installs nghttp2-client (h2load, nghttp) and wrk with apt-get when missing. Builds
# `cargo build --release -p omnirelay-benches --features count-allocs --bins` (honouring
# CARGO_TARGET_DIR). Every server binds 127.0.0.1 only and is stopped on exit. Results go to
# $BENCH_OUT (default: <target dir>/bench-results); the table is printed at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=0
BUILD=1
FAMILIES=all
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --grpc|--http)
            [[ $FAMILIES == all ]] || { echo "give one of --grpc and --http, once" >&2; exit 2; }
            FAMILIES=${arg#--} ;;
        -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

START_TIME=$(date +%s)
log() { printf '[%4ds] %s\n' "$(( $(date +%s) - START_TIME ))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- settings (fixed; override only to experiment) -------------------------------------------
if (( QUICK )); then
    ROUNDS=${ROUNDS:-1}
    N_LAT=${N_LAT:-2000}        # h2load requests at -c1 -m1
    N_THR=${N_THR:-10000}       # h2load requests at -c4 -m16
    WRK_SECS=${WRK_SECS:-2}
    N_ALLOC=${N_ALLOC:-2000}    # calls per allocation measurement
    N_WARM=${N_WARM:-500}
else
    ROUNDS=${ROUNDS:-4}
    N_LAT=${N_LAT:-20000}
    N_THR=${N_THR:-100000}
    WRK_SECS=${WRK_SECS:-3}
    N_ALLOC=${N_ALLOC:-20000}
    N_WARM=${N_WARM:-5000}
fi
WRK_CONNS_THR=64                 # HTTP/1.1 has no streams: 4 x 16 in flight = 64 connections
PORT_BASE=${BENCH_PORT_BASE:-28071}  # below the ephemeral range, so no client socket holds it
LOAD_TIMEOUT=120                 # seconds; no single load run may take longer

# ---- tools ------------------------------------------------------------------------------------
need=()
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v nghttp >/dev/null 2>&1 || need+=(nghttp2-client)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if (( ${#need[@]} )); then
    SUDO=""
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "need ${need[*]} and neither root nor sudo"
        SUDO=sudo
    fi
    log "installing ${need[*]}"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ---- build ------------------------------------------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR = /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
if (( BUILD )); then
    log "cargo build --release -p omnirelay-benches --features count-allocs --bins"
    cargo build --release -q -p omnirelay-benches --features count-allocs --bins
fi
BIN="$TARGET_DIR/release"
for b in bench-server bench-server-counted bench-stats; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing: build first (drop --no-build)"
done

OUT=${BENCH_OUT:-$TARGET_DIR/bench-results}
# The directory is replaced; one that holds anything but an earlier run's results is refused.
[[ ! -e $OUT || -d $OUT ]] || die "$OUT is not a directory: give BENCH_OUT a directory"
if [[ -d $OUT && -n $(ls -A "$OUT") && ! -f $OUT/results.tsv && ! -d $OUT/logs ]]; then
    die "$OUT is not empty and holds no earlier results: give BENCH_OUT a new directory"
fi
rm -rf "$OUT"
mkdir -p "$OUT/logs"
"$BIN/bench-stats" bodies "$OUT"
RESULTS="$OUT/results.tsv"
ALLOCS="$OUT/allocs.tsv"
: >"$RESULTS"
: >"$ALLOCS"
CLK_TCK=$(getconf CLK_TCK)

# ---- server lifecycle -------------------------------------------------------------------------
SERVER_PIDS=()
cleanup() {
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_of() {
    case "$1" in
        omnirelay-grpc) echo $((PORT_BASE)) ;;
        tonic) echo $((PORT_BASE + 1)) ;;
        omnirelay-http) echo $((PORT_BASE + 2)) ;;
        axum) echo $((PORT_BASE + 3)) ;;
        hyper) echo $((PORT_BASE + 4)) ;;
    esac
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server IMPL BINARY TAG: starts it, waits for "listening", sets SERVER_PID.
start_server() {
    local impl=$1 binary=$2 tag=$3 port
    port=$(port_of "$impl")
    port_busy "$port" && die "127.0.0.1:$port is already in use"
    "$BIN/$binary" --impl "$impl" --port "$port" \
        >"$OUT/logs/$tag.stdout" 2>"$OUT/logs/$tag.stderr" &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    for _ in $(seq 100); do
        grep -q '^listening' "$OUT/logs/$tag.stdout" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || die "$impl exited: $(cat "$OUT/logs/$tag.stderr")"
        sleep 0.1
    done
    die "$impl did not start listening on $port"
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    local keep=()
    for pid in "${SERVER_PIDS[@]}"; do [[ $pid == "$SERVER_PID" ]] || keep+=("$pid"); done
    SERVER_PIDS=("${keep[@]+"${keep[@]}"}")
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# ---- load generators --------------------------------------------------------------------------
GRPC_H=(-H 'content-type: application/grpc' -H 'te: trailers')
EMPTY_PATH=/grpc.testing.TestService/EmptyCall
UNARY_PATH=/grpc.testing.TestService/UnaryCall

# check_grpc PORT PATH BODY: one call with nghttp; its grpc-status must be 0.
check_grpc() {
    local out="$OUT/logs/check-$1-${2##*/}.txt"
    timeout 10 nghttp -v "${GRPC_H[@]}" -d "$3" "http://127.0.0.1:$1$2" >"$out" 2>&1 ||
        die "nghttp to $1$2 failed: $(grep -av '^\[' "$out" | tail -3)"
    grep -aq 'grpc-status: 0' "$out" || die "grpc-status of $2 on port $1 is not 0: $(grep -a grpc- "$out")"
}

HTTP_H=(-H 'content-type: application/octet-stream' -H 'rpc-caller: wrk' -H 'rpc-service: bench'
    -H 'rpc-procedure: echo' -H 'rpc-encoding: raw' -H 'context-ttl-ms: 5000')

# check_http PORT: one echo over HTTP/1.1 must answer 2xx (and, for OmniRelay, Rpc-Status: success).
check_http() {
    local out
    out=$(timeout 10 h2load --h1 -n 1 -c 1 "${HTTP_H[@]}" -d "$OUT/echo.bin" "http://127.0.0.1:$1/" 2>&1) ||
        die "h2load --h1 to $1 failed: $out"
    grep -q 'status codes: 1 2xx' <<<"$out" || die "echo on port $1 did not answer 2xx: $out"
}

# h2load_run SCENARIO SERVER ROUND PORT PATH BODY N C M [h1]: gRPC (or, with h1, the HTTP/1.1
# echo) through h2load; every request must succeed (HTTP/1.1: answer 2xx).
h2load_run() {
    local scenario=$1 server=$2 round=$3 port=$4 path=$5 body=$6 n=$7 c=$8 m=$9 mode=${10:-grpc}
    local tag="$scenario-$server-r$round" before after txt lat rps ok headers
    if [[ $mode == h1 ]]; then headers=(--h1 "${HTTP_H[@]}"); else headers=("${GRPC_H[@]}"); fi
    txt="$OUT/logs/$tag.txt"
    before=$(cpu_ticks "$SERVER_PID")
    timeout "$LOAD_TIMEOUT" h2load -n "$n" -c "$c" -m "$m" -t 1 "${headers[@]}" -d "$body" \
        --log-file="$OUT/logs/$tag.log" "http://127.0.0.1:$port$path" >"$txt" 2>&1 ||
        die "h2load failed: $(tail -5 "$txt")"
    after=$(cpu_ticks "$SERVER_PID")
    ok=$(awk '/^requests:/ {print $8}' "$txt")
    [[ $ok == "$n" ]] || die "$tag: only $ok of $n requests succeeded: $(grep -E '^requests|^status' "$txt")"
    if [[ $mode == h1 ]]; then
        grep -q "status codes: $n 2xx" "$txt" || die "$tag: not every echo answered 2xx: $(grep '^status' "$txt")"
    fi
    rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$txt")
    read -r _ mean _ p99 < <("$BIN/bench-stats" latency "$OUT/logs/$tag.log")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$server" "$round" "$rps" "$mean" "$p99" \
        "$(awk -v t=$((after - before)) -v k="$CLK_TCK" 'BEGIN{printf "%.2f", t / k}')" "$n" >>"$RESULTS"
    log "  $tag: $rps req/s, mean ${mean} us, p99 ${p99} us"
}

# wrk latency unit -> microseconds
to_us() { awk -v v="$1" 'BEGIN{ u = v; sub(/[0-9.]+/, "", u); x = v + 0;
    if (u == "us") x = x; else if (u == "ms") x *= 1000; else if (u == "s") x *= 1000000; print x }'; }

# wrk_run SCENARIO SERVER ROUND PORT CONNS
wrk_run() {
    local scenario=$1 server=$2 round=$3 port=$4 conns=$5
    local tag="$scenario-$server-r$round" before after txt rps mean p99 reqs bad
    txt="$OUT/logs/$tag.txt"
    before=$(cpu_ticks "$SERVER_PID")
    timeout "$LOAD_TIMEOUT" wrk -t1 -c"$conns" -d"${WRK_SECS}s" --latency \
        -s "$ROOT/benches/wrk/echo.lua" "http://127.0.0.1:$port/" >"$txt" 2>&1 ||
        die "wrk failed: $(tail -5 "$txt")"
    after=$(cpu_ticks "$SERVER_PID")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$txt")
    [[ -z $bad ]] || die "$tag: $bad non-2xx responses"
    grep -q 'Socket errors' "$txt" && die "$tag: socket errors: $(grep 'Socket errors' "$txt")"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$txt")
    mean=$(to_us "$(awk '$1 == "Latency" {print $2; exit}' "$txt")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$txt")")
    reqs=$(awk '/requests in/ {print $1}' "$txt")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$server" "$round" "$rps" "$mean" "$p99" \
        "$(awk -v t=$((after - before)) -v k="$CLK_TCK" 'BEGIN{printf "%.2f", t / k}')" "$reqs" >>"$RESULTS"
    log "  $tag: $rps req/s, mean ${mean} us, p99 ${p99} us"
}

# Each round starts every contender afresh, then runs each scenario against each contender in
# turn (OmniRelay first in odd rounds, the peer first in even ones), so the numbers of a row
# are taken seconds apart. The HTTP rounds also run the hyper floor (`--impl hyper`: hyper's
# HTTP/1.1 connection and a bare echo `service_fn`), which no hyper-based server can beat: how
# far it is above axum is how much this machine lets any server lead.
declare -A PID_OF

grpc_round() {
    local round=$1 server port scenario
    shift
    for server in "$@"; do
        port=$(port_of "$server")
        start_server "$server" bench-server "$server-r$round"
        PID_OF[$server]=$SERVER_PID
        check_grpc "$port" "$EMPTY_PATH" "$OUT/empty.bin"
        check_grpc "$port" "$UNARY_PATH" "$OUT/unary.bin"
        timeout "$LOAD_TIMEOUT" h2load -n "$N_WARM" -c 4 -m 16 -t 1 "${GRPC_H[@]}" -d "$OUT/unary.bin" \
            "http://127.0.0.1:$port$UNARY_PATH" >/dev/null 2>&1 || die "warm-up of $server failed"
    done
    for scenario in EmptyCall:c1m1 EmptyCall:c4m16 UnaryCall100B:c1m1 UnaryCall100B:c4m16; do
        local call=${scenario%%:*} load=${scenario#*:} path body n c m
        if [[ $call == EmptyCall ]]; then path=$EMPTY_PATH body="$OUT/empty.bin"
        else path=$UNARY_PATH body="$OUT/unary.bin"; fi
        if [[ $load == c1m1 ]]; then n=$N_LAT c=1 m=1; else n=$N_THR c=4 m=16; fi
        for server in "$@"; do
            SERVER_PID=${PID_OF[$server]}
            h2load_run "grpc-$call-$load" "$server" "$round" "$(port_of "$server")" "$path" "$body" "$n" "$c" "$m"
        done
    done
    for server in "$@"; do SERVER_PID=${PID_OF[$server]}; stop_server; done
}

http_round() {
    local round=$1 server port conns
    shift
    for server in "$@"; do
        port=$(port_of "$server")
        start_server "$server" bench-server "$server-r$round"
        PID_OF[$server]=$SERVER_PID
        check_http "$port"
        timeout "$LOAD_TIMEOUT" wrk -t1 -c4 -d1s -s "$ROOT/benches/wrk/echo.lua" "http://127.0.0.1:$port/" \
            >/dev/null 2>&1 || die "warm-up of $server failed"
    done
    for load in wrk:1 h2load:1 wrk:"$WRK_CONNS_THR"; do
        local tool=${load%%:*} conns=${load#*:}
        for server in "$@"; do
            SERVER_PID=${PID_OF[$server]}
            if [[ $tool == wrk ]]; then
                wrk_run "http-echo100B-wrk-c$conns" "$server" "$round" "$(port_of "$server")" "$conns"
            else
                h2load_run "http-echo100B-h2load-h1-c$conns" "$server" "$round" "$(port_of "$server")" / \
                    "$OUT/echo.bin" "$N_LAT" "$conns" 1 h1
            fi
        done
    done
    for server in "$@"; do SERVER_PID=${PID_OF[$server]}; stop_server; done
}

# ---- allocations per call ----------------------------------------------------------------------
# snapshot: asks the counted server for its counters (SIGUSR1) and prints "allocs reallocs bytes".
snapshot() {
    local err=$1 lines
    lines=$(grep -c '^allocs' "$err" || true)
    kill -USR1 "$SERVER_PID"
    for _ in $(seq 100); do
        (( $(grep -c '^allocs' "$err" || true) > lines )) && break
        sleep 0.05
    done
    grep '^allocs' "$err" | tail -1 | awk '{print $2, $4, $6}'
}

# alloc_measure SERVER CALL: N_ALLOC calls at -c1 -m1; appends the deltas to allocs.tsv.
alloc_measure() {
    local server=$1 call=$2 port err a0 r0 b0 a1 r1 b1 args
    port=$(port_of "$server")
    err="$OUT/logs/$server-counted.stderr"
    case "$call" in
        EmptyCall) args=("${GRPC_H[@]}" -d "$OUT/empty.bin" "http://127.0.0.1:$port$EMPTY_PATH") ;;
        UnaryCall100B) args=("${GRPC_H[@]}" -d "$OUT/unary.bin" "http://127.0.0.1:$port$UNARY_PATH") ;;
        echo100B) args=(--h1 "${HTTP_H[@]}" -d "$OUT/echo.bin" "http://127.0.0.1:$port/") ;;
    esac
    read -r a0 r0 b0 < <(snapshot "$err")
    timeout "$LOAD_TIMEOUT" h2load -n "$N_ALLOC" -c 1 -m 1 -t 1 "${args[@]}" \
        >"$OUT/logs/alloc-$server-$call.txt" 2>&1 || die "h2load (allocs) against $server failed"
    grep -q "$N_ALLOC succeeded" "$OUT/logs/alloc-$server-$call.txt" ||
        die "allocation run against $server: not every call succeeded"
    if [[ $call == echo100B ]]; then
        grep -q "status codes: $N_ALLOC 2xx" "$OUT/logs/alloc-$server-$call.txt" ||
            die "allocation run against $server: not every echo answered 2xx"
    fi
    read -r a1 r1 b1 < <(snapshot "$err")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$call" "$N_ALLOC" $((a1 - a0)) $((r1 - r0)) $((b1 - b0)) >>"$ALLOCS"
    log "  $server $call: $(awk -v a=$((a1 - a0)) -v n="$N_ALLOC" 'BEGIN{printf "%.2f", a / n}') allocs/call"
}

alloc_server() {
    local server=$1 port
    shift
    port=$(port_of "$server")
    start_server "$server" bench-server-counted "$server-counted"
    # Warm up (first connection, lazily built state), so the measured calls are the steady state.
    if [[ $server == omnirelay-http || $server == axum || $server == hyper ]]; then
        timeout "$LOAD_TIMEOUT" h2load --h1 -n "$N_WARM" -c 1 "${HTTP_H[@]}" -d "$OUT/echo.bin" \
            "http://127.0.0.1:$port/" >/dev/null 2>&1 || die "warm-up of $server failed"
    else
        timeout "$LOAD_TIMEOUT" h2load -n "$N_WARM" -c 1 "${GRPC_H[@]}" -d "$OUT/unary.bin" \
            "http://127.0.0.1:$port$UNARY_PATH" >/dev/null 2>&1 || die "warm-up of $server failed"
    fi
    for call in "$@"; do alloc_measure "$server" "$call"; done
    stop_server
}

# ---- the run ------------------------------------------------------------------------------------
LOAD_AT_START=$(cut -d" " -f1-3 /proc/loadavg)
log "load average $LOAD_AT_START; results in $OUT; $ROUNDS round(s); h2load -n $N_LAT (c1 m1) / -n $N_THR (c4 m16); wrk -d${WRK_SECS}s"
for round in $(seq "$ROUNDS"); do
    log "round $round of $ROUNDS"
    if (( round % 2 == 1 )); then grpc_order=(omnirelay-grpc tonic); http_order=(omnirelay-http axum hyper)
    else grpc_order=(tonic omnirelay-grpc); http_order=(hyper axum omnirelay-http); fi
    [[ $FAMILIES == http ]] || grpc_round "$round" "${grpc_order[@]}"
    [[ $FAMILIES == grpc ]] || http_round "$round" "${http_order[@]}"
done

log "allocations per call ($N_ALLOC calls each, -c1 -m1, counting allocator)"
if [[ $FAMILIES != http ]]; then
    alloc_server omnirelay-grpc EmptyCall UnaryCall100B
    alloc_server tonic EmptyCall UnaryCall100B
fi
if [[ $FAMILIES != grpc ]]; then
    alloc_server omnirelay-http echo100B
    alloc_server axum echo100B
    alloc_server hyper echo100B
fi

{
    echo "## Results ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)."
    echo "Tools: $(h2load --version 2>&1 | head -1), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(rustc --version 2>/dev/null || echo rustc ?)."
    case $FAMILIES in
        grpc) echo "Rows: gRPC only (--grpc); the HTTP settings below were not used." ;;
        http) echo "Rows: HTTP only (--http); the gRPC settings below were not used." ;;
    esac
    echo "Settings: $ROUNDS round(s), contenders alternated per scenario; h2load -t1 -n $N_LAT at -c1 -m1 and -n $N_THR at -c4 -m16 (gRPC), h2load --h1 -t1 -n $N_LAT -c1 and wrk -t1 -d${WRK_SECS}s at -c1 and -c$WRK_CONNS_THR (HTTP/1.1); medians over rounds. h2load latencies are per request from --log-file; wrk latencies are wrk's --latency. Machine load average (1/5/15 min) at the start: $LOAD_AT_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    "$BIN/bench-stats" table "$RESULTS"
    echo
    echo "Heap allocations per call ($N_ALLOC calls at -c1 -m1 after $N_WARM warm-up calls, counting global allocator):"
    echo
    "$BIN/bench-stats" allocs "$ALLOCS"
} >"$OUT/table.md"

cat "$OUT/table.md"
log "done in $(( $(date +%s) - START_TIME )) s; raw data in $OUT"
