#!/usr/bin/env bash
# Cluster-link benchmarks (issue 4): two regions on loopback joined through a TCP proxy that counts bytes and can
# add a one-way delay (e2e/bench/lib/links-proxy.ts, the harness TcpProxy).
#
#   1. bandwidth: 1000 topics, a subscriber in B on 10 of them (1 %); bytes at the proxy for idle, unsubscribed
#      and subscribed traffic, through a Meridian link (A <-> B, links both ways) and a mosquitto 2.0 bridge
#      (`topic # both 1`, mosquitto A dials mosquitto B); QoS 1 publishes, PAYLOAD bytes
#   2. forwarding A -> B with `meridian bench pub` (publishers on A, subscribers on B), QoS 2: throughput at max
#      rate without delay and with DELAY_MS one way; latency p50/p99 at LAT_RATE msg/s with DELAY_MS one way
#   3. route convergence: CONV_SUBS subscriptions in A until B's /api/v1/links counts them, with DELAY_MS one way
#
# Environment: PAYLOAD (256)  ROUNDS (10)  DELAY_MS (40)  LAT_RATE (5000)  LAT_SECONDS (6)  TPUT_SECONDS (6)
#   CONV_SUBS (10000)  MERIDIAN_FLAGS (extra `meridian broker` flags)  SKIP_BUILD=1  KEEP=1 (keep WORK_DIR)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK_DIR=$(mktemp -d /tmp/meridian-links-bench.XXXXXX)
RESULTS_DIR="$WORK_DIR/results"
PAYLOAD=${PAYLOAD:-256}
ROUNDS=${ROUNDS:-10}
DELAY_MS=${DELAY_MS:-40}
LAT_RATE=${LAT_RATE:-5000}
LAT_SECONDS=${LAT_SECONDS:-6}
TPUT_SECONDS=${TPUT_SECONDS:-6}
CONV_SUBS=${CONV_SUBS:-10000}
# shellcheck source=lib/brokers.sh
source "$REPO_ROOT/e2e/bench/lib/brokers.sh"

cleanup() {
  stop_started_brokers
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK_DIR"; else log "kept $WORK_DIR"; fi
}
trap cleanup EXIT
mkdir -p "$RESULTS_DIR"

LIB="$REPO_ROOT/dist/e2e/bench/lib"
LOAD=(node "$LIB/links-load.js")
BENCH=(node "$REPO_ROOT/dist/broker/src/cli/main.js" bench)

ensure_mosquitto >/dev/null
build_meridian
[[ -f "$LIB/links-load.js" && -f "$LIB/links-proxy.js" ]] || die "links helpers missing in $LIB after the build"
log "machine: $(machine_summary)"
LOAD_BEFORE=$(load_average)
log "load average before: $LOAD_BEFORE"

A_PORT=$(free_port); B_PORT=$(free_port); A_ADMIN=$(free_port); B_ADMIN=$(free_port)
MA_PORT=$(free_port); MB_PORT=$(free_port)
TO_A=$(free_port); TO_B=$(free_port); TO_MB=$(free_port); CONTROL_PORT=$(free_port)
CONTROL="http://127.0.0.1:$CONTROL_PORT"

node "$LIB/links-proxy.js" --control-port "$CONTROL_PORT" --proxy "toA=$TO_A:$A_PORT" --proxy "toB=$TO_B:$B_PORT" \
  --proxy "toMB=$TO_MB:$MB_PORT" >"$WORK_DIR/proxy.log" 2>&1 &
STARTED_PIDS+=("$!")
wait_for_port "$CONTROL_PORT" 10 "$!"

# start_region NAME REMOTE MQTT_PORT ADMIN_PORT PROXY_PORT: a standalone Meridian node with a link to REMOTE (`#`).
start_region() {
  local name=$1 remote=$2 port=$3 admin=$4 proxy=$5 dir="$WORK_DIR/region-$1"
  mkdir -p "$dir/links"
  "${LOAD[@]}" prepare --dir "$dir"
  printf 'links:\n  - name: %s\n    servers: ["127.0.0.1:%s"]\n    username: link\n    passwordFile: %s\n    topics: ["#"]\n' \
    "$remote" "$proxy" "$dir/link-password" >"$dir/links/links.yaml"
  node "$REPO_ROOT/dist/broker/src/cli/main.js" broker --mqtt-port "$port" --admin-port "$admin" \
    --data-dir "$dir/data" --node-name "$name-1" --cluster-name "$name" --users-file "$dir/users.yaml" \
    --links "$dir/links/links.yaml" --log-level warn ${MERIDIAN_FLAGS:-} >"$WORK_DIR/meridian-$name.log" 2>&1 &
  STARTED_PIDS+=("$!")
  wait_for_port "$port" 20 "$!"
}
start_region a b "$A_PORT" "$A_ADMIN" "$TO_B"
start_region b a "$B_PORT" "$B_ADMIN" "$TO_A"
"${LOAD[@]}" wait-link --admin "http://127.0.0.1:$A_ADMIN" --link b
"${LOAD[@]}" wait-link --admin "http://127.0.0.1:$B_ADMIN" --link a
log "Meridian regions a (:$A_PORT) and b (:$B_PORT) linked through proxies :$TO_B and :$TO_A"

start_mosquitto "$MB_PORT" "max_queued_messages 0"
start_mosquitto "$MA_PORT" "max_queued_messages 0" "connection to-b" "address 127.0.0.1:$TO_MB" "topic # both 1" "cleansession true" \
  "bridge_protocol_version mqttv311" "notifications false"
log "mosquitto A (:$MA_PORT) bridged to mosquitto B (:$MB_PORT) through proxy :$TO_MB"

started=$SECONDS
log "1. bandwidth, Meridian link (load $(load_average))"
"${LOAD[@]}" bandwidth --label meridian --pub-port "$A_PORT" --sub-port "$B_PORT" --control "$CONTROL" \
  --proxies toA,toB --rounds "$ROUNDS" --payload "$PAYLOAD" >"$RESULTS_DIR/bandwidth-meridian.json"
log "1. bandwidth, mosquitto bridge (load $(load_average))"
"${LOAD[@]}" bandwidth --label mosquitto --pub-port "$MA_PORT" --sub-port "$MB_PORT" --control "$CONTROL" \
  --proxies toMB --rounds "$ROUNDS" --payload "$PAYLOAD" >"$RESULTS_DIR/bandwidth-mosquitto.json"

# bench_case NAME ARGS...: publishers on A, subscribers on B, QoS 2.
bench_case() {
  local name=$1; shift
  log "2. $name (load $(load_average))"
  "${BENCH[@]}" pub --host 127.0.0.1 --port "$A_PORT" --sub-hosts "127.0.0.1:$B_PORT" --qos 2 \
    --payload-size "$PAYLOAD" --publish-delay 1 --drain-timeout 10 --client-id-prefix "$name-" --json "$@" \
    >"$RESULTS_DIR/pub-$name.json" || die "bench $name failed"
}
bench_case "1-throughput-no-delay" --count 4 --subscribers 4 --rate 0 --inflight 20 --e2e-window 500 --duration "$TPUT_SECONDS"
curl -fsS -X POST "$CONTROL/delay?ms=$DELAY_MS" >/dev/null
bench_case "2-throughput-${DELAY_MS}ms" --count 4 --subscribers 4 --rate 0 --inflight 20 --e2e-window 500 --duration "$TPUT_SECONDS"
bench_case "3-latency-${LAT_RATE}-per-s-${DELAY_MS}ms" --count 5 --subscribers 5 --rate $((LAT_RATE / 5)) --inflight 50 \
  --duration "$LAT_SECONDS"

log "3. route convergence, $CONV_SUBS subscriptions, ${DELAY_MS} ms one way (load $(load_average))"
"${LOAD[@]}" convergence --port "$A_PORT" --admin "http://127.0.0.1:$B_ADMIN" --link a --control "$CONTROL" \
  --count "$CONV_SUBS" >"$RESULTS_DIR/convergence.json"
log "cases took $((SECONDS - started)) s"

echo "Cluster links: two standalone regions on loopback, ${PAYLOAD} B payloads, one-way delay ${DELAY_MS} ms where noted"
echo "Machine: $(machine_summary)"
echo "Load average before: $LOAD_BEFORE; at the end: $(load_average)"
echo
"${LOAD[@]}" summarize --dir "$RESULTS_DIR"
echo
echo "JSON reports: $RESULTS_DIR$([[ "${KEEP:-0}" == 1 ]] && echo '' || echo ' (removed; KEEP=1 keeps them)')"
