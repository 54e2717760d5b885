#!/usr/bin/env bash
# Installs what the integration tests need besides Rust: the Node packages pinned in
# tests/node/package-lock.json (json-server, a real REST server the tests poll).
# Idempotent and quick: runs `npm ci` only when tests/node/node_modules is missing or
# older than the lock file. scripts/test.sh calls this before `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../tests/node"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "install-test-deps: node and npm are required by the integration tests (json-server);" >&2
    echo "install-test-deps: install Node.js (with npm; json-server 0.17.4 needs node >= 12) and run this script again." >&2
    exit 1
fi

# npm ci writes node_modules/.package-lock.json last, so its age tells when an install
# finished; an interrupted install leaves it missing or older than the lock file.
stamp=node_modules/.package-lock.json
if [[ -f "$stamp" && ! "$stamp" -ot package-lock.json ]]; then
    echo "install-test-deps: tests/node/node_modules is up to date"
    exit 0
fi

echo "install-test-deps: npm ci in tests/node (node $(node --version), npm $(npm --version))"
npm ci --no-audit --no-fund
