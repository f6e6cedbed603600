#!/usr/bin/env bash
# The README's test command: installs what it needs, builds, runs every test tier, and ends with the line
# `N passed, N failed` computed from Jest's --json report.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
mkdir -p .cache
report=.cache/jest-results.json
rm -f "$report"
# --forceExit: a suite that leaves a handle open must not hang CI; every process a test starts is stopped by PID.
NODE_OPTIONS=--experimental-vm-modules npx jest --ci --forceExit --json --outputFile="$report" "$@"
status=$?
# Safety net: a broker a failed test could not stop must not outlive the run.
leaked=$(pgrep -f "$(pwd)/dist/broker/src/cli/main.js" || true)
if [ -n "$leaked" ]; then
  echo "test-all: stopping processes left behind by tests: $leaked"
  kill -9 $leaked 2>/dev/null || true
fi
node scripts/jest-summary.mjs "$report" || status=1
exit $status
