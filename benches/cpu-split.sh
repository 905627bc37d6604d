#!/usr/bin/env bash
# Splits the server CPU time per call into user and system time, for HTTP servers under
# `wrk -t1 -c CONNS -d SECS`, alternating the contenders each round (reversed in even rounds):
#
#   benches/cpu-split.sh ROUNDS SECS CONNS NAME=BINARY:IMPL...
#   benches/cpu-split.sh 4 8 64 new=target/release/bench-server:omnirelay-http \
#       old=/tmp/old/release/bench-server:omnirelay-http axum=target/release/bench-server:axum
#
# BINARY is a `bench-server` build (any commit: this is how two builds are compared in one
# run), IMPL one of its HTTP servers (omnirelay-http, axum, hyper). Each server listens on
# 127.0.0.1 from port $SPLIT_PORT (default 28200) on; every load run lasts SECS seconds. Prints
# one line per run (req/s, user and system microseconds per call, from /proc/PID/stat), then
# the medians per contender and the per-round req/s ratio of each contender to the first.
# SPLIT_LUA names another wrk script (default: benches/wrk/echo.lua, the 100-byte echo).
# Needs wrk (benches/run.sh installs it). Does not build anything.
set -euo pipefail

ROUNDS=${1:?usage: cpu-split.sh ROUNDS SECS CONNS NAME=BINARY:IMPL...}
SECS=${2:?}
CONNS=${3:?}
shift 3
(($# > 0)) || { echo "no contenders" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LUA=${SPLIT_LUA:-$ROOT/benches/wrk/echo.lua}
TICK=$(getconf CLK_TCK)
port=${SPLIT_PORT:-28200}
names=()
declare -A PID PORT
cleanup() { for n in "${names[@]}"; do kill "${PID[$n]}" 2>/dev/null || true; done; }
trap cleanup EXIT
for spec in "$@"; do
    name=${spec%%=*}
    rest=${spec#*=}
    bin=${rest%%:*}
    impl=${rest#*:}
    [[ -x $bin ]] || { echo "not a binary: $bin" >&2; exit 2; }
    log=$(mktemp)
    "$bin" --impl "$impl" --port "$port" >"$log" 2>&1 &
    PID[$name]=$!
    PORT[$name]=$port
    names+=("$name")
    for _ in $(seq 100); do grep -q '^listening' "$log" && break; sleep 0.1; done
    grep -q '^listening' "$log" || { echo "$name did not start: $(cat "$log")" >&2; exit 1; }
    port=$((port + 1))
done
results=$(mktemp)
for round in $(seq "$ROUNDS"); do
    order=("${names[@]}")
    if ((round % 2 == 0)); then
        order=()
        for ((i = ${#names[@]} - 1; i >= 0; i--)); do order+=("${names[$i]}"); done
    fi
    for name in "${order[@]}"; do
        pid=${PID[$name]}
        read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
        out=$(timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$LUA" \
            "http://127.0.0.1:${PORT[$name]}/" 2>&1)
        read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
        calls=$(awk '/requests in/ {print $1}' <<<"$out")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        [[ -n $calls && $calls -gt 0 ]] || { echo "wrk failed against $name: $out" >&2; exit 1; }
        awk -v r="$round" -v n="$name" -v q="$rps" -v c="$calls" -v u=$((u1 - u0)) \
            -v s=$((s1 - s0)) -v t="$TICK" 'BEGIN {
            printf "%s %s %.0f %.3f %.3f\n", r, n, q, u / t * 1e6 / c, s / t * 1e6 / c }' |
            tee -a "$results"
    done
done
python3 - "$results" "${names[@]}" <<'EOF'
import statistics, sys
path, names = sys.argv[1], sys.argv[2:]
runs = {}
for line in open(path):
    r, n, rps, user, system = line.split()
    runs.setdefault(n, {})[int(r)] = (float(rps), float(user), float(system))
for n in names:
    v = list(runs[n].values())
    print(f"{n}: req/s median {statistics.median(x[0] for x in v):.0f}, "
          f"user {statistics.median(x[1] for x in v):.2f} us/call, "
          f"system {statistics.median(x[2] for x in v):.2f} us/call")
first = names[0]
for n in names[1:]:
    ratios = [runs[first][r][0] / runs[n][r][0] for r in sorted(runs[first])]
    print(f"{first} / {n} per round: " + " ".join(f"{x:.3f}" for x in ratios)
          + f", median {statistics.median(ratios):.3f}")
EOF
