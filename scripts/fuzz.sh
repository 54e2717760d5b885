#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), with the nightly toolchain and
# cargo-fuzz (installed here when missing). Not part of .ci/run: it needs nightly and
# takes long. A crash leaves its input under fuzz/artifacts/<target>/; turn each into a
# regression test in the normal suite.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-600}"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
for target in $(cargo +nightly fuzz list); do
    echo "== fuzz $target for ${seconds}s"
    mkdir -p "corpus/$target"
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        2>&1 | tail -n 20
done
