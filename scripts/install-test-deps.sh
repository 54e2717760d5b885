#!/usr/bin/env bash
# Installs what the integration tests need besides Rust: nats-server (Debian's package,
# for the JetStream sink tests) and the Node packages pinned in
# tests/node/package-lock.json (json-server, a real REST server the tests poll).
# Idempotent and quick: installs nats-server only when it is missing, and runs `npm ci`
# only when tests/node/node_modules is missing or older than the lock file.
# scripts/test.sh calls this before `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../tests/node"

# Debian's nats-server (2.9 on bookworm) with JetStream; the tests start their own on
# 127.0.0.1 with a temporary store.
if ! command -v nats-server >/dev/null 2>&1 && [[ ! -x /usr/sbin/nats-server ]]; then
    echo "install-test-deps: installing nats-server (apt-get)"
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    if ! { "${sudo_cmd[@]}" apt-get install -y -q nats-server >/dev/null 2>&1 ||
           { "${sudo_cmd[@]}" apt-get update -q >/dev/null && "${sudo_cmd[@]}" apt-get install -y -q nats-server >/dev/null; }; }; then
        echo "install-test-deps: could not install nats-server; install Debian's nats-server package and run this script again." >&2
        exit 1
    fi
fi
echo "install-test-deps: $({ command -v nats-server || echo /usr/sbin/nats-server; } | head -1) $(/usr/sbin/nats-server --version 2>/dev/null || nats-server --version)"

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
