#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh Debian machine with Node 20, then builds.
# Idempotent: a second run only rebuilds. `--broker-only` skips the Kubernetes test tools (for the demo).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null || need_apt+=(mosquitto-clients)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  # The registry mirror here lacks some optional platform packages (other OSes' native builds), which makes
  # `npm ci` refuse the lock file; `npm install` then installs the same locked versions for this platform.
  npm ci --no-audit --no-fund --loglevel=error 2>/tmp/meridian-npm-ci.log \
    || { echo "setup: npm ci refused the lock file (see /tmp/meridian-npm-ci.log); npm install"; npm install --no-audit --no-fund --loglevel=error; }
fi

echo "setup: build"
npx tsc -p tsconfig.json

# kube-apiserver, etcd, kubectl and helm for the operator's integration tests: built/fetched once, then cached in
# ~/.cache/meridian (a cold build takes several minutes; doing it here keeps it out of a test's time budget).
if [ "${1:-}" != "--broker-only" ]; then
  echo "setup: Kubernetes test tools"
  bash e2e/k8s/provide-tools.sh >/dev/null
fi
