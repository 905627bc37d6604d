#!/usr/bin/env bash
# Code generation checks beyond `cargo test`: the generated code of every case documents cleanly
# under `rustdoc -D warnings` and yields no doctest, and real protoc + the plugin reproduce the
# builder's output for every case (.ci/protoc-cases.sh, which installs protobuf-compiler).
set -euo pipefail
ROOT=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
cd "$ROOT"

echo "+ RUSTDOCFLAGS='-D warnings' cargo doc -p omnirelay-codegen-tests --no-deps"
RUSTDOCFLAGS="-D warnings" cargo doc -q -p omnirelay-codegen-tests --no-deps

echo "+ cargo test --doc -p omnirelay-codegen-tests (no comment may become a doctest)"
doctests=$(cargo test -q --doc -p omnirelay-codegen-tests 2>&1 | grep -E '^running [0-9]+ tests?' | awk '{s += $2} END {print s + 0}')
if [ "$doctests" -ne 0 ]; then
  echo "FAIL: $doctests doctest(s) generated from proto comments" >&2
  exit 1
fi
echo "no doctests in generated code"

bash .ci/protoc-cases.sh
