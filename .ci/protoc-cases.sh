#!/usr/bin/env bash
# Replays every codegen case through real protoc (Debian's protobuf-compiler) and
# protoc-gen-omnirelay-rust, and requires the output to be byte-identical to what omnirelay-build
# wrote for the same case (that output is compiled and tested by `cargo test -p
# omnirelay-codegen-tests`). Also runs the plugin on proto/grpc/testing/test.proto and compares
# with the examples' build output. A case the generator does not support (editions) must fail.
# Prints one PASS/FAIL line per check and `N passed, M failed`; exits 1 on any failure.
set -euo pipefail
ROOT=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
cd "$ROOT"
export DEBIAN_FRONTEND=noninteractive

if ! command -v protoc >/dev/null 2>&1; then
  echo "installing protobuf-compiler"
  apt-get update -qq >/dev/null && apt-get install -y -qq protobuf-compiler >/dev/null
fi
protoc --version

# Cargo reports each build script's OUT_DIR; that is where the builder's output is.
BUILD_JSON=$(cargo build --message-format=json -p protoc-gen-omnirelay-rust -p omnirelay-codegen-tests -p omnirelay-examples)
field() { # package-name-prefix key
  python3 -c '
import json, sys
prefix, key = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if key == "out_dir" and m.get("reason") == "build-script-executed" and m["package_id"].split("#")[0].rsplit("/", 1)[-1].startswith(prefix):
        print(m["out_dir"]); break
    if key == "executable" and m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == prefix:
        print(m["executable"]); break
' "$1" "$2" <<<"$BUILD_JSON"
}
PLUGIN=$(field protoc-gen-omnirelay-rust executable)
CASES_OUT=$(field codegen-tests out_dir)
EXAMPLES_OUT=$(field examples out_dir)
[ -x "$PLUGIN" ] && [ -e "$CASES_OUT/cases.txt" ] && [ -e "$EXAMPLES_OUT/grpc.testing.rs" ] || {
  echo "build outputs not found (plugin=$PLUGIN cases=$CASES_OUT examples=$EXAMPLES_OUT)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0 failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

start=$(date +%s.%N)
while IFS=$'\t' read -r name parameter files; do
  dir=$WORK/$name
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  if protoc --plugin=protoc-gen-omnirelay-rust="$PLUGIN" --omnirelay-rust_out="$dir" \
      --omnirelay-rust_opt="$parameter" -I codegen-tests/cases -I /usr/include $files 2>"$dir.err"; then
    if [ -e "$CASES_OUT/$name.error" ]; then
      fail "$name" "protoc succeeded but the builder failed: $(cat "$CASES_OUT/$name.error")"
    elif diff -r "$dir" "$CASES_OUT/$name" >"$dir.diff"; then
      pass "$name (byte-identical to omnirelay-build)"
    elif [[ $name == *local_wkt* ]] && diff -r -I '^ *///' "$dir" "$CASES_OUT/$name" >/dev/null; then
      # protox's bundled well-known types carry no comments; protoc's /usr/include copies do.
      pass "$name (identical but for the doc comments of protoc's well-known-type sources)"
    else
      fail "$name" "differs from omnirelay-build: $(head -c 300 "$dir.diff")"
    fi
  elif [ -e "$CASES_OUT/$name.error" ]; then
    pass "$name (rejected: $(tr '\n' ' ' <"$dir.err" | head -c 200))"
  else
    fail "$name" "protoc failed: $(head -c 500 "$dir.err")"
  fi
done <"$CASES_OUT/cases.txt"
elapsed=$(python3 -c "import time; print(f'{time.time() - $start:.2f}')")
echo "protoc + plugin over the whole case set: ${elapsed}s"

mkdir -p "$WORK/interop"
if protoc --plugin=protoc-gen-omnirelay-rust="$PLUGIN" --omnirelay-rust_out="$WORK/interop" \
    -I proto proto/grpc/testing/test.proto proto/grpc/testing/messages.proto proto/grpc/testing/empty.proto \
  && cmp -s "$WORK/interop/grpc.testing.rs" "$EXAMPLES_OUT/grpc.testing.rs"; then
  pass "grpc/testing/test.proto (byte-identical to the examples' build output)"
else
  fail "grpc/testing/test.proto" "protoc failed or the output differs from the examples' build output"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
