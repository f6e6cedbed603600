#!/usr/bin/env bash
# The README's test command: installs what it needs, builds, runs every test tier, and ends with the line
# `N passed, N failed` computed from Jest's --json report.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
mkdir -p .cache
report=.cache/jest-results.json
rm -f "$report"
NODE_OPTIONS=--experimental-vm-modules npx jest --ci --json --outputFile="$report" "$@"
status=$?
node scripts/jest-summary.mjs "$report" || status=1
exit $status
