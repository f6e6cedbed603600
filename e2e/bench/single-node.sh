#!/usr/bin/env bash
# Single-node benchmark: the same `meridian bench pub` load against Meridian and mosquitto 2.0 on loopback,
# QoS 0, 1 and 2, 1 publisher -> 1 subscriber and 10 -> 10 (publisher i -> subscriber i on bench/i).
#
#   throughput: --rate 0 (as fast as flow control allows: --inflight 20, --e2e-window 500), received msg/s
#   latency:    a fixed total rate (LAT_RATE_TOTAL msg/s split over the publishers), end-to-end p50/p99
#
# Prints a Markdown table with the ratio Meridian/mosquitto. Environment:
#   TPUT_SECONDS (8)  LAT_SECONDS (5)  LAT_RATE_TOTAL (2000)  PAYLOAD (256)  SKIP_BUILD=1  KEEP=1 (keep WORK_DIR)
#   QOS_LEVELS ("0 1 2": the QoS levels to run)
#   PROFILE=1         run Meridian under --cpu-prof and print its top self-time functions
#   MERIDIAN_FLAGS    extra `meridian broker` flags, e.g. '--durability relaxed'
#   RESULTS_DIR       where the JSON reports go (default: a temp dir, printed at the end)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK_DIR=$(mktemp -d /tmp/meridian-bench.XXXXXX)
RESULTS_DIR=${RESULTS_DIR:-$WORK_DIR/results}
TPUT_SECONDS=${TPUT_SECONDS:-8}
LAT_SECONDS=${LAT_SECONDS:-5}
LAT_RATE_TOTAL=${LAT_RATE_TOTAL:-2000}
PAYLOAD=${PAYLOAD:-256}
QOS_LEVELS=${QOS_LEVELS:-0 1 2}
# shellcheck source=lib/brokers.sh
source "$REPO_ROOT/e2e/bench/lib/brokers.sh"

cleanup() {
  stop_started_brokers
  if [[ "${KEEP:-0}" != 1 && "$RESULTS_DIR" != "$WORK_DIR"/* ]]; then rm -rf "$WORK_DIR"; fi
}
trap cleanup EXIT
mkdir -p "$RESULTS_DIR"

BENCH=(node "$REPO_ROOT/dist/broker/src/cli/main.js" bench)

# run_case MODE QOS PUBS BROKER PORT BROKER_PID; writes <case>.json and <case>.cpu ("ticks ticks-per-second"
# of broker CPU during the run, so the summary can compare CPU per message even when the client is the limit).
run_case() {
  local mode=$1 qos=$2 pubs=$3 broker=$4 port=$5 broker_pid=$6 rate=0 seconds=$TPUT_SECONDS ticks_before
  if [[ $mode == lat ]]; then rate=$((LAT_RATE_TOTAL / pubs)); seconds=$LAT_SECONDS; fi
  local out="$RESULTS_DIR/$mode-q$qos-${pubs}x$pubs-$broker.json"
  ticks_before=$(cpu_ticks "$broker_pid")
  "${BENCH[@]}" pub --host 127.0.0.1 --port "$port" --count "$pubs" --subscribers "$pubs" --interval 1 \
    --qos "$qos" --payload-size "$PAYLOAD" --rate "$rate" --duration "$seconds" --inflight 20 --e2e-window 500 \
    --drain-timeout 5 --client-id-prefix "$broker-$mode-" --json >"$out" \
    || die "bench $mode QoS $qos ${pubs}x$pubs against $broker failed"
  echo "$(($(cpu_ticks "$broker_pid") - ticks_before)) $(getconf CLK_TCK)" >"${out%.json}.cpu"
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const l = r.receive.latencyMs ?? {};
    console.error(`  ${process.argv[2].padEnd(9)} ${String(Math.round(r.receive.ratePerSec)).padStart(7)} msg/s received, ` +
      `${r.receive.missing} missing, p50 ${l.p50} ms, p99 ${l.p99} ms, client cpu ${Math.round(r.clientCpu.percentOfOneCore)}%`);' "$out" "$broker"
}

ensure_mosquitto >/dev/null
build_meridian
log "machine: $(machine_summary)"
log "load average before: $(load_average)"

MOSQUITTO_PORT=$(free_port)
start_mosquitto "$MOSQUITTO_PORT"
MOSQUITTO_PID=$BROKER_PID

PROFILE_DIR="$WORK_DIR/cpuprofile"
MERIDIAN_PORT=$(free_port)
if [[ "${PROFILE:-0}" == 1 ]]; then
  start_meridian "$MERIDIAN_PORT" bench --cpu-prof --cpu-prof-dir "$PROFILE_DIR"
else
  start_meridian "$MERIDIAN_PORT" bench
fi
MERIDIAN_PID=$BROKER_PID

log "warming up both brokers (2 s each; V8 needs it, mosquitto does not, the same load goes to both)"
for port in "$MERIDIAN_PORT" "$MOSQUITTO_PORT"; do
  "${BENCH[@]}" pub --host 127.0.0.1 --port "$port" --count 2 --subscribers 2 --qos 1 --duration 2 --e2e-window 500 \
    --client-id-prefix warmup- >/dev/null || die "warm-up against port $port failed"
done

started=$SECONDS
for qos in $QOS_LEVELS; do
  for pubs in 1 10; do
    for mode in tput lat; do
      log "QoS $qos, $pubs -> $pubs, $mode (load $(load_average))"
      # Alternate which broker goes first so a change in background load does not always favour one.
      if (( (qos + pubs) % 2 == 0 )); then order=(meridian mosquitto); else order=(mosquitto meridian); fi
      for broker in "${order[@]}"; do
        if [[ $broker == meridian ]]; then port=$MERIDIAN_PORT pid=$MERIDIAN_PID; else port=$MOSQUITTO_PORT pid=$MOSQUITTO_PID; fi
        run_case "$mode" "$qos" "$pubs" "$broker" "$port" "$pid"
      done
    done
  done
done
log "cases took $((SECONDS - started)) s; load average after: $(load_average)"
log "broker RSS after the run: Meridian $(rss_kb "$MERIDIAN_PID") KiB, mosquitto $(rss_kb "$MOSQUITTO_PID") KiB"

echo "Meridian/mosquitto, ${TPUT_SECONDS} s max-rate runs (throughput) and ${LAT_SECONDS} s runs at ${LAT_RATE_TOTAL} msg/s in total (latency), ${PAYLOAD} B payloads"
echo "Machine: $(machine_summary); load average at the end: $(load_average)"
echo
node "$REPO_ROOT/dist/e2e/bench/lib/summarize.js" "$RESULTS_DIR"

if [[ "${PROFILE:-0}" == 1 ]]; then
  stop_pid "$MERIDIAN_PID"
  profile=$(ls -t "$PROFILE_DIR"/*.cpuprofile 2>/dev/null | head -n 1 || true)
  if [[ -n "$profile" ]]; then
    echo
    echo "Meridian CPU profile (whole run, self time): $profile (copied to the JSON reports directory)"
    node "$REPO_ROOT/dist/e2e/bench/lib/cpuprofile-top.js" "$profile" 25
    cp "$profile" "$RESULTS_DIR/" 2>/dev/null || true
  else
    log "no .cpuprofile written in $PROFILE_DIR"
  fi
fi
echo
echo "JSON reports: $RESULTS_DIR$([[ "${KEEP:-0}" == 1 || "$RESULTS_DIR" != "$WORK_DIR"/* ]] && echo '' || echo ' (removed; KEEP=1 keeps them)')"
