#!/usr/bin/env bash
# Broker memory per idle connection and per subscription, Meridian and mosquitto side by side.
#
# For each broker (started fresh on loopback): RSS idle; RSS while CONNECTIONS idle clients are connected
# (`meridian bench conn`); RSS while CONNECTIONS clients each hold one subscription (`meridian bench sub`,
# topic mem/<i>). Per connection = (connected - idle) / CONNECTIONS; per subscription =
# (subscribed - connected) / CONNECTIONS. RSS is read from /proc/<pid>/status after SETTLE seconds.
# Environment: CONNECTIONS (10000)  SETTLE (3)  SKIP_BUILD=1  MERIDIAN_FLAGS (extra broker flags)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK_DIR=$(mktemp -d /tmp/meridian-memory.XXXXXX)
CONNECTIONS=${CONNECTIONS:-10000}
SETTLE=${SETTLE:-3}
# shellcheck source=lib/brokers.sh
source "$REPO_ROOT/e2e/bench/lib/brokers.sh"

cleanup() {
  [[ -n "${BENCH_PID:-}" ]] && kill -TERM "$BENCH_PID" 2>/dev/null
  stop_started_brokers
  rm -rf "$WORK_DIR"
}
trap cleanup EXIT

# Each connection is a file descriptor in the broker and in the bench client; both inherit this limit.
ulimit -n $((CONNECTIONS * 2 + 1024)) || die "cannot raise the open-file limit to $((CONNECTIONS * 2 + 1024)) (ulimit -n is $(ulimit -n))"

BENCH=(node "$REPO_ROOT/dist/broker/src/cli/main.js" bench)
HOLD_SECONDS=$((SETTLE + 120)) # upper bound; the script ends the hold with SIGTERM once RSS is read

# hold_and_measure BROKER_PID PORT LABEL bench-args...: runs the bench in the background until its ready file
# appears, waits SETTLE seconds, sets RSS to the broker's RSS in KiB, then stops the bench (it disconnects cleanly).
# No command substitution around it: `die` must end the script, and BENCH_PID must reach cleanup.
hold_and_measure() {
  local broker_pid=$1 port=$2 label=$3; shift 3
  local ready="$WORK_DIR/ready-$label-$port"
  "${BENCH[@]}" "$@" --host 127.0.0.1 --port "$port" --count "$CONNECTIONS" --interval 0 --concurrency 200 \
    --client-id-prefix "mem-$label-" --ready-file "$ready" >"$WORK_DIR/bench-$label-$port.txt" 2>&1 &
  BENCH_PID=$!
  local deadline=$((SECONDS + 180))
  until [[ -f "$ready" ]]; do
    kill -0 "$BENCH_PID" 2>/dev/null || die "bench $label against port $port ended early: $(cat "$WORK_DIR/bench-$label-$port.txt")"
    ((SECONDS < deadline)) || die "bench $label against port $port not ready after 180 s"
    sleep 0.2
  done
  sleep "$SETTLE"
  RSS=$(rss_kb "$broker_pid")
  kill -TERM "$BENCH_PID"
  wait "$BENCH_PID" || die "bench $label against port $port failed: $(cat "$WORK_DIR/bench-$label-$port.txt")"
  BENCH_PID=
  grep -E '^(connect|subscribe) ' "$WORK_DIR/bench-$label-$port.txt" | sed 's/; .*//; s/^/    /' >&2 || true
}

# measure_broker NAME: starts the broker, sets IDLE, CONNECTED and SUBSCRIBED (RSS in KiB), stops it.
measure_broker() {
  local name=$1 port pid
  port=$(free_port)
  if [[ $name == meridian ]]; then start_meridian "$port" memory; else start_mosquitto "$port"; fi
  pid=$BROKER_PID
  sleep "$SETTLE"
  IDLE=$(rss_kb "$pid")
  log "$name: idle RSS $IDLE KiB; connecting $CONNECTIONS idle clients"
  hold_and_measure "$pid" "$port" conn conn --hold "$HOLD_SECONDS"
  CONNECTED=$RSS
  log "$name: RSS with $CONNECTIONS connections $CONNECTED KiB; now $CONNECTIONS clients with one subscription each"
  hold_and_measure "$pid" "$port" sub sub --topic 'mem/%i' --qos 1 --duration "$HOLD_SECONDS"
  SUBSCRIBED=$RSS
  log "$name: RSS with $CONNECTIONS connections + $CONNECTIONS subscriptions $SUBSCRIBED KiB"
  stop_pid "$pid"
}

ensure_mosquitto >/dev/null
build_meridian
log "machine: $(machine_summary); load average $(load_average)"

measure_broker meridian
m_idle=$IDLE m_conn=$CONNECTED m_sub=$SUBSCRIBED
measure_broker mosquitto
q_idle=$IDLE q_conn=$CONNECTED q_sub=$SUBSCRIBED

per() { awk -v a="$1" -v b="$2" -v n="$CONNECTIONS" 'BEGIN { printf "%.2f", (b - a) / n }'; }
echo "Broker RSS, $CONNECTIONS clients on loopback (KiB; per-item figures in KiB)"
echo "Machine: $(machine_summary); load average $(load_average)"
echo
echo "| broker | idle RSS | + $CONNECTIONS connections | + 1 subscription each | per connection | per subscription |"
echo "|---|---|---|---|---|---|"
echo "| Meridian | $m_idle | $m_conn | $m_sub | $(per "$m_idle" "$m_conn") | $(per "$m_conn" "$m_sub") |"
echo "| mosquitto | $q_idle | $q_conn | $q_sub | $(per "$q_idle" "$q_conn") | $(per "$q_conn" "$q_sub") |"
