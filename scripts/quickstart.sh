#!/usr/bin/env bash
# Quickstart: build siphon, start the bundled demo API on 127.0.0.1:8099, and run
# examples/quickstart.sql against it on the embedded store (./siphon-data). No internet needed.
# Query it from another terminal with:  ./target/debug/siphon sql "SELECT * FROM weather"
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --bin siphon --example demo_api
./target/debug/examples/demo_api 8099 &
api=$!
trap 'kill $api 2>/dev/null || true' EXIT

./target/debug/siphon run examples/quickstart.sql --data-dir ./siphon-data --listen 127.0.0.1:8080 &
siphon=$!
trap 'kill $siphon $api 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 1 100); do
  ./target/debug/siphon sql --format csv "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 3
echo
echo "== SELECT * FROM weather ORDER BY timestamp DESC LIMIT 6"
./target/debug/siphon sql "SELECT * FROM weather ORDER BY timestamp DESC LIMIT 6"
echo "== SELECT * FROM system.connector_status"
./target/debug/siphon sql "SELECT table_name, state, requests, records, last_error FROM system.connector_status"
echo
echo "siphon keeps polling; try ./target/debug/siphon sql in another terminal. Ctrl-C stops it."
wait $siphon
