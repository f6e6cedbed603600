#!/usr/bin/env bash
# Cluster-link benchmarks (issue 4): two regions on loopback joined through a TCP proxy that counts bytes and can
# add a one-way delay (e2e/bench/lib/links-proxy.ts, the harness TcpProxy).
#
#   1. bandwidth: 1000 topics, a subscriber in B on 10 of them (1 %); bytes at the proxy for idle, unsubscribed
#      and subscribed traffic, through a Meridian link (A <-> B, links both ways) and a mosquitto 2.0 bridge
#      (`topic # both 1`, mosquitto A dials mosquitto B); QoS 1 publishes, BW_PAYLOADS bytes
#   2. forwarding A -> B with `meridian bench pub` (publishers on A, subscribers on B), QoS 2: throughput at max
#      rate without delay and with DELAY_MS one way; latency p50/p99 at LAT_RATE msg/s with DELAY_MS one way
#      and the same 5k msg/s load through mosquitto's bridge and straight through the proxy into mosquitto B
#      (the measurement floor), for the ratio printed at the end
#   2b. link drain: with A's link cut, DRAIN_COUNT messages queued in A; after the restore, the rate at which B's
#      subscriber receives them (the link's own forwarding capacity, publishers' QoS 2 flow control excluded)
#   3. route convergence: CONV_SUBS subscriptions in A until B's /api/v1/links counts them, with DELAY_MS one way
#   4. route bootstrap (last: it sets routeTtlSeconds BOOT_TTL on both links): BOOT_ROUTES subscriptions in A, the
#      A -> B link cut until B expired A's lane, restored; time until B holds all of them again, no delay
#
# Environment: PAYLOAD (256, forwarding cases)  BW_PAYLOADS ("256 1024", bandwidth cases)  ROUNDS (10)  DELAY_MS (40)  LAT_RATE (5000)  LAT_SECONDS (6)  TPUT_SECONDS (6)
#   LAT_LOW_RATE (500, a second latency case below the forwarding capacity)  LAT_WARMUP (1: seconds published before the
#   LAT_SECONDS measured in the latency cases, counted but not in the latency figures — the load generator's own
#   warm-up, which shows against mosquitto too)  CONV_SUBS (10000)  DRAIN_COUNT (30000)
#   DRAIN_QOS (2)  BOOT_ROUTES (100000)  BOOT_TTL (10)  CASES ("bandwidth forwarding drain convergence bootstrap": the parts to run)
#   MERIDIAN_FLAGS (extra `meridian broker` flags, e.g. '--durability relaxed')  SKIP_BUILD=1  KEEP=1 (keep WORK_DIR)
#   PROFILE=1  V8 CPU profile of both Meridian regions during the no-delay throughput case and the bootstrap window
#              (restore to the last route in B), taken in-process by
#              lib/cluster-node-hook.ts (SIGUSR2); prints their top self-time functions
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK_DIR=$(mktemp -d /tmp/meridian-links-bench.XXXXXX)
RESULTS_DIR="$WORK_DIR/results"
PAYLOAD=${PAYLOAD:-256}
BW_PAYLOADS=${BW_PAYLOADS:-256 1024}
ROUNDS=${ROUNDS:-10}
DELAY_MS=${DELAY_MS:-40}
LAT_RATE=${LAT_RATE:-5000}
LAT_LOW_RATE=${LAT_LOW_RATE:-500}
LAT_SECONDS=${LAT_SECONDS:-6}
LAT_WARMUP=${LAT_WARMUP:-1}
TPUT_SECONDS=${TPUT_SECONDS:-6}
CONV_SUBS=${CONV_SUBS:-10000}
DRAIN_COUNT=${DRAIN_COUNT:-30000}
DRAIN_QOS=${DRAIN_QOS:-2}
BOOT_ROUTES=${BOOT_ROUTES:-100000}
BOOT_TTL=${BOOT_TTL:-10}
CASES=${CASES:-bandwidth forwarding drain convergence bootstrap}
wants_case() { [[ " $CASES " == *" $1 "* ]]; }
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
  local name=$1 remote=$2 port=$3 admin=$4 proxy=$5 dir="$WORK_DIR/region-$1" node_flags=()
  if [[ "${PROFILE:-0}" == 1 ]]; then node_flags=(--import "$LIB/cluster-node-hook.js"); fi
  mkdir -p "$dir/links"
  "${LOAD[@]}" prepare --dir "$dir"
  printf 'links:\n  - name: %s\n    servers: ["127.0.0.1:%s"]\n    username: link\n    passwordFile: %s\n    topics: ["#"]\n' \
    "$remote" "$proxy" "$dir/link-password" >"$dir/links/links.yaml"
  MERIDIAN_BENCH_HOOK_DIR="$HOOK_DIR" node ${node_flags[@]+"${node_flags[@]}"} "$REPO_ROOT/dist/broker/src/cli/main.js" broker --mqtt-port "$port" --admin-port "$admin" \
    --data-dir "$dir/data" --node-name "$name-1" --cluster-name "$name" --users-file "$dir/users.yaml" \
    --links "$dir/links/links.yaml" --log-level warn ${MERIDIAN_FLAGS:-} >"$WORK_DIR/meridian-$name.log" 2>&1 &
  STARTED_PIDS+=("$!")
  REGION_PIDS+=("$!")
  wait_for_port "$port" 20 "$!"
}
REGION_PIDS=()
HOOK_DIR="$WORK_DIR/hook"
mkdir -p "$HOOK_DIR"

# ask_region PID COMMAND ANSWER: lib/cluster-node-hook.ts in the region's node runs COMMAND; prints the answer path.
ask_region() {
  local pid=$1 waited=0 answer="$HOOK_DIR/$1.$3"
  rm -f "$answer" "$HOOK_DIR/$pid.error"
  echo "$2" >"$HOOK_DIR/$pid.cmd"
  kill -USR2 "$pid"
  until [[ -f "$answer" ]]; do
    [[ -f "$HOOK_DIR/$pid.error" ]] && die "region pid $pid failed '$2': $(cat "$HOOK_DIR/$pid.error")"
    ((waited < 300)) || die "region pid $pid did not answer '$2' within 30 s"
    sleep 0.1; waited=$((waited + 1))
  done
  echo "$answer"
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
wants_case bandwidth || BW_PAYLOADS=""
for size in $BW_PAYLOADS; do
  log "1. bandwidth, Meridian link, $size B payloads (load $(load_average))"
  "${LOAD[@]}" bandwidth --label "meridian-$size" --pub-port "$A_PORT" --sub-port "$B_PORT" --control "$CONTROL" \
    --proxies toA,toB --rounds "$ROUNDS" --payload "$size" >"$RESULTS_DIR/bandwidth-meridian-$size.json"
  log "1. bandwidth, mosquitto bridge, $size B payloads (load $(load_average))"
  "${LOAD[@]}" bandwidth --label "mosquitto-$size" --pub-port "$MA_PORT" --sub-port "$MB_PORT" --control "$CONTROL" \
    --proxies toMB --rounds "$ROUNDS" --payload "$size" >"$RESULTS_DIR/bandwidth-mosquitto-$size.json"
done

# scrape_metrics WHEN: /metrics of both regions into $WORK_DIR/metrics-<region>-WHEN.txt
scrape_metrics() {
  curl -fsS "http://127.0.0.1:$A_ADMIN/metrics" >"$WORK_DIR/metrics-a-$1.txt"
  curl -fsS "http://127.0.0.1:$B_ADMIN/metrics" >"$WORK_DIR/metrics-b-$1.txt"
}

# bench_case NAME ARGS...: publishers on A, subscribers on B, QoS 2.
bench_case() {
  local name=$1; shift
  log "2. $name (load $(load_average))"
  local ticks_a ticks_b
  ticks_a=$(cpu_ticks "${REGION_PIDS[0]}"); ticks_b=$(cpu_ticks "${REGION_PIDS[1]}")
  "${BENCH[@]}" pub --host 127.0.0.1 --port "$A_PORT" --sub-hosts "127.0.0.1:$B_PORT" --qos 2 \
    --payload-size "$PAYLOAD" --publish-delay 1 --drain-timeout 10 --client-id-prefix "$name-" --json "$@" \
    >"$RESULTS_DIR/pub-$name.json" || die "bench $name failed"
  # Region CPU during the case (includes the 1 s publish delay and the drain): ticks of A, of B, ticks per second.
  echo "$(($(cpu_ticks "${REGION_PIDS[0]}") - ticks_a)) $(($(cpu_ticks "${REGION_PIDS[1]}") - ticks_b)) $(getconf CLK_TCK)" \
    >"$RESULTS_DIR/pub-$name.cpu"
}
# peer_case NAME PUB_PORT QOS ARGS...: publishers on PUB_PORT, subscribers on mosquitto B, at QOS (no region CPU).
peer_case() {
  local name=$1 pub_port=$2 qos=$3; shift 3
  log "2. $name (load $(load_average))"
  "${BENCH[@]}" pub --host 127.0.0.1 --port "$pub_port" --sub-hosts "127.0.0.1:$MB_PORT" --qos "$qos" --sub-qos "$qos" \
    --payload-size "$PAYLOAD" --publish-delay 1 --drain-timeout 10 --client-id-prefix "$name-" --json "$@" \
    >"$RESULTS_DIR/pub-$name.json" || die "bench $name failed"
}
# print_latency_against_peers: the 5k msg/s case against mosquitto's bridge and the measurement floor, same run.
print_latency_against_peers() {
  local meridian="$RESULTS_DIR/pub-4-latency-${LAT_RATE}-per-s-${DELAY_MS}ms.json"
  local bridge="$RESULTS_DIR/pub-5-mosquitto-bridge-${LAT_RATE}-per-s-${DELAY_MS}ms.json"
  local floor="$RESULTS_DIR/pub-6-floor-proxy-only-${LAT_RATE}-per-s-${DELAY_MS}ms.json"
  [[ -f "$meridian" && -f "$bridge" && -f "$floor" ]] || return 0
  echo
  DELAY_MS=$DELAY_MS LAT_RATE=$LAT_RATE node -e '
    const [m, b, f] = process.argv.slice(1).map((p) => JSON.parse(require("fs").readFileSync(p, "utf8")).receive.latencyMs);
    const over = (l) => `p50 +${(l.p50 - Number(process.env.DELAY_MS)).toFixed(1)} / p99 +${(l.p99 - Number(process.env.DELAY_MS)).toFixed(1)} ms`;
    console.log(`At ${process.env.LAT_RATE} msg/s with ${process.env.DELAY_MS} ms one way, latency above the delay: Meridian exactly-once ${over(m)}; ` +
      `mosquitto bridge (QoS 1, in memory) ${over(b)}; measurement floor (load generator + proxy, no bridge) ${over(f)}. ` +
      `p99 ratio Meridian / mosquitto bridge: ${(m.p99 / b.p99).toFixed(2)}`);
  ' "$meridian" "$bridge" "$floor"
}
# print_region_cpu: CPU µs per delivered message in each region, per forwarding case.
print_region_cpu() {
  echo
  echo "Region CPU per delivered message (utime + stime over the whole case, idle link traffic included)"
  echo
  echo "| case | delivered | A µs/msg | B µs/msg |"
  echo "| --- | --- | --- | --- |"
  local cpu name received a b hz
  for cpu in "$RESULTS_DIR"/pub-*.cpu; do
    [[ -f "$cpu" ]] || continue
    name=$(basename "$cpu" .cpu); name=${name#pub-}
    received=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).receive.received)' "${cpu%.cpu}.json")
    read -r a b hz <"$cpu"
    awk -v n="$name" -v r="$received" -v a="$a" -v b="$b" -v hz="$hz" \
      'BEGIN { printf "| %s | %d | %.1f | %.1f |\n", n, r, r ? a * 1e6 / hz / r : 0, r ? b * 1e6 / hz / r : 0 }'
  done
}
if wants_case forwarding; then
if [[ "${PROFILE:-0}" == 1 ]]; then for pid in "${REGION_PIDS[@]}"; do ask_region "$pid" profile-start profile-start.done >/dev/null; done; fi
bench_case "1-throughput-no-delay" --count 4 --subscribers 4 --rate 0 --inflight 20 --e2e-window 500 --duration "$TPUT_SECONDS"
if [[ "${PROFILE:-0}" == 1 ]]; then
  mv "$(ask_region "${REGION_PIDS[0]}" profile-stop cpuprofile)" "$RESULTS_DIR/throughput-a.cpuprofile"
  mv "$(ask_region "${REGION_PIDS[1]}" profile-stop cpuprofile)" "$RESULTS_DIR/throughput-b.cpuprofile"
fi
fi
if wants_case drain; then
log "2b. link drain, $DRAIN_COUNT queued QoS $DRAIN_QOS messages (load $(load_average))"
"${LOAD[@]}" drain --pub-port "$A_PORT" --sub-port "$B_PORT" --admin "http://127.0.0.1:$A_ADMIN" --link b --control "$CONTROL" \
  --proxy toB --count "$DRAIN_COUNT" --qos "$DRAIN_QOS" --payload "$PAYLOAD" >"$RESULTS_DIR/drain.json"
fi
curl -fsS -X POST "$CONTROL/delay?ms=$DELAY_MS" >/dev/null
if wants_case forwarding; then
bench_case "2-throughput-${DELAY_MS}ms" --count 4 --subscribers 4 --rate 0 --inflight 20 --e2e-window 500 --duration "$TPUT_SECONDS"
bench_case "3-latency-${LAT_LOW_RATE}-per-s-${DELAY_MS}ms" --count 5 --subscribers 5 --rate $((LAT_LOW_RATE / 5)) \
  --inflight 50 --duration $((LAT_SECONDS + LAT_WARMUP)) --warmup "$LAT_WARMUP"
scrape_metrics before
bench_case "4-latency-${LAT_RATE}-per-s-${DELAY_MS}ms" --count 5 --subscribers 5 --rate $((LAT_RATE / 5)) --inflight 50 \
  --duration $((LAT_SECONDS + LAT_WARMUP)) --warmup "$LAT_WARMUP"
scrape_metrics after
# The same 5k msg/s load against mosquitto, same proxy and delay: its bridge (QoS 1 between the brokers: at-least-once,
# in memory), and the floor of the measurement itself (publishers through the proxy straight into mosquitto B, QoS 0:
# load generator + proxy + one crossing, no second broker).
# (--inflight 20: mosquitto's max_inflight_messages; with more outstanding QoS 2 publishes it resets publishers now and then)
peer_case "5-mosquitto-bridge-${LAT_RATE}-per-s-${DELAY_MS}ms" "$MA_PORT" 2 --count 5 --subscribers 5 --rate $((LAT_RATE / 5)) \
  --inflight 20 --duration $((LAT_SECONDS + LAT_WARMUP)) --warmup "$LAT_WARMUP"
peer_case "6-floor-proxy-only-${LAT_RATE}-per-s-${DELAY_MS}ms" "$TO_MB" 0 --count 5 --subscribers 5 --rate $((LAT_RATE / 5)) \
  --duration $((LAT_SECONDS + LAT_WARMUP)) --warmup "$LAT_WARMUP"
for r in a b; do
  "${LOAD[@]}" commits --before "$WORK_DIR/metrics-$r-before.txt" --after "$WORK_DIR/metrics-$r-after.txt" --label "$r" \
    --case "4-latency-${LAT_RATE}-per-s-${DELAY_MS}ms" >"$RESULTS_DIR/commits-$r.json"
done
fi

if wants_case convergence; then
log "3. route convergence, $CONV_SUBS subscriptions, ${DELAY_MS} ms one way (load $(load_average))"
"${LOAD[@]}" convergence --port "$A_PORT" --admin "http://127.0.0.1:$B_ADMIN" --link a --control "$CONTROL" \
  --count "$CONV_SUBS" >"$RESULTS_DIR/convergence.json"
fi
if wants_case bootstrap; then
log "4. route bootstrap, $BOOT_ROUTES routes, no delay (load $(load_average))"
curl -fsS -X POST "$CONTROL/delay?ms=0" >/dev/null
boot_profile=()
if [[ "${PROFILE:-0}" == 1 ]]; then boot_profile=(--hook-dir "$HOOK_DIR" --profile-dir "$RESULTS_DIR"); fi
"${LOAD[@]}" bootstrap --port "$A_PORT" --admin-a "http://127.0.0.1:$A_ADMIN" --admin-b "http://127.0.0.1:$B_ADMIN" \
  --links-a "$WORK_DIR/region-a/links/links.yaml" --links-b "$WORK_DIR/region-b/links/links.yaml" --control "$CONTROL" \
  --proxy toB --count "$BOOT_ROUTES" --ttl "$BOOT_TTL" --pid-a "${REGION_PIDS[0]}" --pid-b "${REGION_PIDS[1]}" \
  ${boot_profile[@]+"${boot_profile[@]}"} >"$RESULTS_DIR/bootstrap.json"
fi
log "cases took $((SECONDS - started)) s"

echo "Cluster links: two standalone regions on loopback, ${PAYLOAD} B payloads in the forwarding cases, one-way delay ${DELAY_MS} ms where noted"
echo "Machine: $(machine_summary)"
echo "Load average before: $LOAD_BEFORE; at the end: $(load_average)"
echo
"${LOAD[@]}" summarize --dir "$RESULTS_DIR"
wants_case forwarding && print_latency_against_peers
wants_case forwarding && print_region_cpu
if [[ "${PROFILE:-0}" == 1 ]]; then
  for name in a b; do
    for profiled in throughput bootstrap; do
      [[ -f "$RESULTS_DIR/$profiled-$name.cpuprofile" ]] || continue
      echo
      echo "Region $name CPU profile during the $profiled case (self time):"
      node "$LIB/cpuprofile-top.js" "$RESULTS_DIR/$profiled-$name.cpuprofile" 20
    done
  done
fi
echo
echo "JSON reports: $RESULTS_DIR$([[ "${KEEP:-0}" == 1 ]] && echo '' || echo ' (removed; KEEP=1 keeps them)')"
