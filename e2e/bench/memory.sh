#!/usr/bin/env bash
# Broker memory per idle connection and per subscription, Meridian and mosquitto side by side.
#
# For each broker (started fresh on loopback): RSS idle; RSS while CONNECTIONS idle clients are connected
# (`meridian bench conn`); then, on another fresh broker, RSS while CONNECTIONS clients each hold SUBS_PER_CLIENT
# QoS 1 subscriptions (`meridian bench sub`, topics mem/<i>/<k>). Per connection = (connected - idle) / CONNECTIONS;
# per subscription = (subscribed - connected) / (CONNECTIONS * SUBS_PER_CLIENT). Several subscriptions per client
# lift the subscription cost above the noise of Meridian's garbage-collected heap. RSS (VmRSS, which includes Meridian's memory-mapped
# LMDB pages) is read from /proc/<pid>/status SETTLE seconds after the last client is ready.
# Environment: CONNECTIONS (10000)  SUBS_PER_CLIENT (10)  SETTLE (3)  SKIP_BUILD=1  MERIDIAN_FLAGS (extra broker flags)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK_DIR=$(mktemp -d /tmp/meridian-memory.XXXXXX)
CONNECTIONS=${CONNECTIONS:-10000}
SETTLE=${SETTLE:-3}
SUBS_PER_CLIENT=${SUBS_PER_CLIENT:-10}
SUBSCRIPTIONS=$((CONNECTIONS * SUBS_PER_CLIENT))
# shellcheck source=lib/brokers.sh
source "$REPO_ROOT/e2e/bench/lib/brokers.sh"

cleanup() {
  [[ -n "${BENCH_PID:-}" ]] && kill -TERM "$BENCH_PID" 2>/dev/null
  stop_started_brokers
  rm -rf "$WORK_DIR"
}
trap cleanup EXIT

# Each connection is a file descriptor in the broker and another in the bench client (separate processes, both
# inherit this limit). Raise the soft limit as far as the hard limit allows.
needed_fds=$((CONNECTIONS + 1024))
hard_fds=$(ulimit -Hn)
if [[ $hard_fds == unlimited ]] || ((hard_fds >= needed_fds * 4)); then ulimit -n $((needed_fds * 4)); else ulimit -n "$hard_fds"; fi
(($(ulimit -n) >= needed_fds)) || die "open-file limit $(ulimit -n) (hard $hard_fds) is below the $needed_fds needed for $CONNECTIONS connections"

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

# start_broker NAME: starts a fresh broker (new data directory) on a free port; sets PORT and PID.
start_broker() {
  PORT=$(free_port)
  if [[ $1 == meridian ]]; then start_meridian "$PORT" "memory-$PORT"; else start_mosquitto "$PORT"; fi
  PID=$BROKER_PID
  sleep "$SETTLE"
}

rss_detail() { awk '/^(RssAnon|RssFile):/ {printf "%s %s KiB ", $1, $2}' "/proc/$1/status"; }

# measure_broker NAME: sets IDLE, CONNECTED and SUBSCRIBED (RSS in KiB). Each phase runs on a fresh broker so
# the garbage of the previous phase's clients is not counted: IDLE and CONNECTED come from one broker, SUBSCRIBED
# (connections + one subscription each) from a second one.
measure_broker() {
  local name=$1
  start_broker "$name"
  IDLE=$(rss_kb "$PID")
  log "$name: idle RSS $IDLE KiB ($(rss_detail "$PID")); connecting $CONNECTIONS idle clients"
  hold_and_measure "$PID" "$PORT" conn conn --hold "$HOLD_SECONDS"
  CONNECTED=$RSS
  log "$name: RSS with $CONNECTIONS connections $CONNECTED KiB ($(rss_detail "$PID"))"
  stop_pid "$PID"
  start_broker "$name"
  log "$name: fresh broker, idle RSS $(rss_kb "$PID") KiB; $CONNECTIONS clients with $SUBS_PER_CLIENT subscriptions each"
  local topics=() k
  for ((k = 0; k < SUBS_PER_CLIENT; k++)); do topics+=(--topic "mem/%i/$k"); done
  hold_and_measure "$PID" "$PORT" sub sub "${topics[@]}" --qos 1 --duration "$HOLD_SECONDS"
  SUBSCRIBED=$RSS
  log "$name: RSS with $CONNECTIONS connections + $SUBSCRIPTIONS subscriptions $SUBSCRIBED KiB ($(rss_detail "$PID"))"
  stop_pid "$PID"
}

ensure_mosquitto >/dev/null
build_meridian
log "machine: $(machine_summary); load average $(load_average)"

measure_broker meridian
m_idle=$IDLE m_conn=$CONNECTED m_sub=$SUBSCRIBED
measure_broker mosquitto
q_idle=$IDLE q_conn=$CONNECTED q_sub=$SUBSCRIBED

per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.2f", (b - a) / n }'; }
echo "Broker RSS, $CONNECTIONS clients on loopback (KiB; per-item figures in KiB)"
echo "Machine: $(machine_summary); load average $(load_average)"
echo
echo "| broker | idle RSS | + $CONNECTIONS connections | + $SUBS_PER_CLIENT subscriptions each | per connection | per subscription |"
echo "|---|---|---|---|---|---|"
for broker in Meridian mosquitto; do
  if [[ $broker == Meridian ]]; then set -- "$m_idle" "$m_conn" "$m_sub"; else set -- "$q_idle" "$q_conn" "$q_sub"; fi
  echo "| $broker | $1 | $2 | $3 | $(per "$1" "$2" "$CONNECTIONS") | $(per "$2" "$3" "$SUBSCRIPTIONS") |"
done
