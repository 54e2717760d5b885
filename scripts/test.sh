#!/usr/bin/env bash
# The whole test suite: formatting, lints, every unit and integration test.
# Usage: scripts/test.sh        (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== test dependencies (tests/node: json-server)"
bash scripts/install-test-deps.sh

echo "== cargo test"
cargo test --workspace --locked
