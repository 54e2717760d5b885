#!/usr/bin/env bash
# Installs what the integration tests need besides Rust:
# * Debian's `nats-server` (2.9 on bookworm, with JetStream) for the sink tests, when it
#   is missing;
# * the Node packages pinned in tests/node/package-lock.json: json-server (a real REST
#   server the tests poll) and playwright-core (which drives the browser of the console
#   test);
# * Debian's `chromium` (the real browser of tests/it/console.rs), with apt-get, when
#   /usr/bin/chromium is missing.
# Idempotent and quick: `npm ci` runs only when tests/node/node_modules is missing or
# older than the lock file, apt-get only when a package is missing. scripts/test.sh
# calls this before `cargo test`.
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
    echo "install-test-deps: node and npm are required by the integration tests (json-server, playwright-core);" >&2
    echo "install-test-deps: install Node.js >= 20 (with npm) and run this script again." >&2
    exit 1
fi

# npm ci writes node_modules/.package-lock.json last, so its age tells when an install
# finished; an interrupted install leaves it missing or older than the lock file.
stamp=node_modules/.package-lock.json
if [[ -f "$stamp" && ! "$stamp" -ot package-lock.json ]]; then
    echo "install-test-deps: tests/node/node_modules is up to date"
else
    echo "install-test-deps: npm ci in tests/node (node $(node --version), npm $(npm --version))"
    npm ci --no-audit --no-fund
fi

# The console test's browser. SIPHON_TEST_CHROMIUM names another one (and skips this).
if [[ -n "${SIPHON_TEST_CHROMIUM:-}" ]]; then
    echo "install-test-deps: using the browser SIPHON_TEST_CHROMIUM=$SIPHON_TEST_CHROMIUM"
elif [[ -x /usr/bin/chromium ]]; then
    echo "install-test-deps: chromium is installed ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
else
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: /usr/bin/chromium is missing and there is no apt-get: install Chromium," >&2
        echo "install-test-deps: or set SIPHON_TEST_CHROMIUM to a Chromium binary, and run this script again." >&2
        exit 1
    fi
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        sudo="sudo"
    fi
    echo "install-test-deps: apt-get install chromium (for the console test)"
    $sudo apt-get update -q
    # fonts-dejavu-core: text in the screenshots on a machine without fonts.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
        chromium fonts-dejavu-core
fi
