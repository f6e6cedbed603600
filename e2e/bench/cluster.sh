#!/usr/bin/env bash
# Regional-cluster benchmarks (issue 3) on loopback: a 3-node cluster (cores c1, c2 + replicant r1) and, for
# comparison, one standalone node, all on random free ports. Three phases (PHASES selects them):
#
#   seed       EMQX's geo-distribution seed workload: `meridian bench sub` with 100 and 1000 clients, each with its
#              own wildcard filter t/bench/+/%i/sub/+/#, connected round-robin to c1, c2, r1 (--hosts). Measures the
#              time from the bench's start until every client is subscribed AND every node's /api/v1/cluster shows
#              every lane with all its routes (polled every POLL_MS; lib/cluster-watch.ts), SEED_RUNS times each.
#   tput       cross-node throughput and latency: publishers on r1, subscribers on c1 (--hosts/--sub-hosts), against
#              the same load on the standalone node; QoS 0/1/2, 1->1 and 10->10, max rate and LAT_RATE_TOTAL msg/s.
#   bootstrap  100k routes: BOOT_CLIENTS clients on c1 with BOOT_TOPICS filters each; RSS and heap delta of every
#              node per 100k routes; then a new replicant r2 starts and the time until its table holds all 100k
#              routes is measured (from its process start, and from its 'cluster peer connected' log line).
#
# Prints a Markdown summary. Every process is stopped by PID on exit, also on failure. Environment:
#   PHASES ("seed tput bootstrap")
#   seed:      SEED_COUNTS ("100 1000")  SEED_RUNS (5)  SEED_INTERVAL (0)  SEED_CONCURRENCY (100)  POLL_MS (10)
#              POLL_FROM (ready: poll the nodes from the last SUBACK on; start: from the first CONNECT, which shows
#              each node catching up but costs the nodes 13-16% of their CPU during the run)
#   tput:      TPUT_SECONDS (4)  LAT_SECONDS (3)  LAT_RATE_TOTAL (2000)  PAIRS ("1 10")  QOS_LEVELS ("0 1 2")
#              PAYLOAD (256)  PUBLISH_DELAY (0.3 s between the last SUBACK and the publishers; see run_tput)
#   bootstrap: BOOT_CLIENTS (1000)  BOOT_TOPICS (100)  SETTLE (3)  ROUTESYNC_BENCH (1: also run the pure route-table
#              micro-benchmark)
#   PROFILE=1  V8 CPU profile of c1, c2, r1 over the seed runs of each client count, taken in-process by
#              lib/cluster-node-hook.ts; job breakdown and top functions printed at the end
#   SKIP_BUILD=1  KEEP=1 (keep WORK_DIR)  RESULTS_DIR  MERIDIAN_FLAGS (extra flags for every node)
# Figures and how to read them: e2e/bench/CLUSTER.md.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK_DIR=$(mktemp -d /tmp/meridian-cluster-bench.XXXXXX)
RESULTS_DIR=${RESULTS_DIR:-$WORK_DIR/results}
PHASES=${PHASES:-seed tput bootstrap}
SEED_COUNTS=${SEED_COUNTS:-100 1000}
SEED_RUNS=${SEED_RUNS:-5}
SEED_INTERVAL=${SEED_INTERVAL:-0}
SEED_CONCURRENCY=${SEED_CONCURRENCY:-100}
POLL_MS=${POLL_MS:-10}
TPUT_SECONDS=${TPUT_SECONDS:-4}
LAT_SECONDS=${LAT_SECONDS:-3}
LAT_RATE_TOTAL=${LAT_RATE_TOTAL:-2000}
PAIRS=${PAIRS:-1 10}
QOS_LEVELS=${QOS_LEVELS:-0 1 2}
PAYLOAD=${PAYLOAD:-256}
PUBLISH_DELAY=${PUBLISH_DELAY:-0.3}
BOOT_CLIENTS=${BOOT_CLIENTS:-1000}
BOOT_TOPICS=${BOOT_TOPICS:-100}
SETTLE=${SETTLE:-3}
ROUTESYNC_BENCH=${ROUTESYNC_BENCH:-1}
# shellcheck source=lib/brokers.sh
source "$REPO_ROOT/e2e/bench/lib/brokers.sh"

MAIN="$REPO_ROOT/dist/broker/src/cli/main.js"
BENCH=(node "$MAIN" bench)
WATCH=(node "$REPO_ROOT/dist/e2e/bench/lib/cluster-watch.js" --poll-ms "$POLL_MS")
POLL_FROM=${POLL_FROM:-ready}
SECRET_FILE="$WORK_DIR/cluster-secret"
NODE_HOOK="$REPO_ROOT/dist/e2e/bench/lib/cluster-node-hook.js"
HOOK_DIR="$WORK_DIR/hook"
BENCH_PIDS=()
declare -A MQTT_PORT ADMIN_PORT CLUSTER_PORT NODE_PID

cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  stop_started_brokers
  if [[ "${KEEP:-0}" != 1 && "$RESULTS_DIR" != "$WORK_DIR"/* ]]; then rm -rf "$WORK_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$RESULTS_DIR" "$HOOK_DIR"
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }
now_ms() { date +%s%3N; }
note() { printf '%s\n' "$*" >>"$RESULTS_DIR/notes.txt"; log "$*"; }

allocate_ports() { # NAME
  MQTT_PORT[$1]=$(free_port)
  ADMIN_PORT[$1]=$(free_port)
  CLUSTER_PORT[$1]=$(free_port)
}

# start_cluster_node NAME ROLE LOG_LEVEL; the seeds are the cores' cluster addresses (but its own).
start_cluster_node() {
  local name=$1 role=$2 level=$3 seeds=() core
  for core in c1 c2; do [[ $core != "$name" ]] && seeds+=("127.0.0.1:${CLUSTER_PORT[$core]}"); done
  # shellcheck disable=SC2086 # MERIDIAN_FLAGS is a list of flags
  MERIDIAN_BENCH_HOOK_DIR="$HOOK_DIR" node --expose-gc --import "$NODE_HOOK" "$MAIN" broker --node-name "$name" --role "$role" --cluster-name bench \
    --data-dir "$WORK_DIR/data-$name" --mqtt-port "${MQTT_PORT[$name]}" --admin-port "${ADMIN_PORT[$name]}" \
    --cluster-host 127.0.0.1 --cluster-port "${CLUSTER_PORT[$name]}" --cluster-advertise "127.0.0.1:${CLUSTER_PORT[$name]}" \
    --seeds "$(IFS=,; echo "${seeds[*]}")" --cluster-secret-file "$SECRET_FILE" --log-level "$level" ${MERIDIAN_FLAGS:-} \
    >"$WORK_DIR/$name.log" 2>&1 &
  NODE_PID[$name]=$!
  STARTED_PIDS+=("${NODE_PID[$name]}")
}

node_args() { local name; for name in "$@"; do printf -- '--node\n%s=%s\n' "$name" "${ADMIN_PORT[$name]}"; done; }
hosts_of() { local name out=(); for name in "$@"; do out+=("127.0.0.1:${MQTT_PORT[$name]}"); done; (IFS=,; echo "${out[*]}"); }
# ask_node NAME COMMAND ANSWER: lib/cluster-node-hook.ts in the node runs COMMAND; prints the answer file's path.
ask_node() {
  local pid=${NODE_PID[$1]} waited=0
  local answer="$HOOK_DIR/$pid.$3"
  rm -f "$answer" "$HOOK_DIR/$pid.error"
  echo "$2" >"$HOOK_DIR/$pid.cmd"
  kill -USR2 "$pid"
  until [[ -f "$answer" ]]; do
    [[ -f "$HOOK_DIR/$pid.error" ]] && die "node $1 (pid $pid) failed '$2': $(cat "$HOOK_DIR/$pid.error")"
    ((waited < 300)) || die "node $1 (pid $pid) did not answer '$2' within 30 s"
    sleep 0.1; waited=$((waited + 1))
  done
  echo "$answer"
}

# "rss_kib heap_used_bytes" of one cluster node right after a full GC.
memory_of() {
  local file
  file=$(ask_node "$1" memory memory.json)
  node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(Math.round(m.rss / 1024), m.heapUsed)' "$file"
}

profile_start() { local name; for name in "$@"; do ask_node "$name" profile-start profile-start.done >/dev/null; done; }
profile_stop() { # LABEL NODES...: <label>-<node>.cpuprofile in the results
  local label=$1 name file; shift
  for name in "$@"; do
    file=$(ask_node "$name" profile-stop cpuprofile)
    mv "$file" "$RESULTS_DIR/$label-$name.cpuprofile"
  done
}

# watch_tables OUT_JSON TIMEOUT_S watch-args...: runs lib/cluster-watch.ts; dies with its report if not converged.
watch_tables() {
  local out=$1 timeout=$2; shift 2
  "${WATCH[@]}" --timeout-s "$timeout" "$@" >"$out" 2>"$out.err" || die "cluster tables did not converge: $(cat "$out.err")"
}

# watch_bench_tables BENCH_PID BENCH_STDERR OUT_JSON TIMEOUT_S watch-args...: watch_tables that gives up as soon as
# the bench exits, and then shows what the bench said.
watch_bench_tables() {
  local pid=$1 bench_err=$2 out=$3 timeout=$4; shift 4
  "${WATCH[@]}" --timeout-s "$timeout" --while-running "$pid" "$@" >"$out" 2>"$out.err" \
    || die "cluster tables did not converge: $(cat "$out.err"); the bench said: $(tail -n 3 "$bench_err" 2>/dev/null)"
}

# seed_expect N: the lane counts round-robin over c1, c2, r1 gives (client i goes to node (i-1) mod 3).
seed_expect() {
  local n=$1
  echo "c1=$(((n + 2) / 3)),c2=$(((n + 1) / 3)),r1=$((n / 3))"
}

stop_bench() { # PID: SIGTERM ends the bench's receive phase; it disconnects and reports.
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" || die "bench process $1 failed"
  local kept=() pid
  for pid in "${BENCH_PIDS[@]}"; do [[ $pid != "$1" ]] && kept+=("$pid"); done
  BENCH_PIDS=("${kept[@]+"${kept[@]}"}")
}

run_seed() {
  local count run ready bench_pid removed_at nodes_before
  for count in $SEED_COUNTS; do
    if [[ "${PROFILE:-0}" == 1 ]]; then profile_start c1 c2 r1; fi
    for run in $(seq 1 "$SEED_RUNS"); do
      local name="seed-$count-$run"
      ready="$WORK_DIR/$name.ready"
      require_alive c1 c2 r1 solo
      nodes_before=$(sum_ticks "${NODE_PID[c1]}" "${NODE_PID[c2]}" "${NODE_PID[r1]}")
      "${BENCH[@]}" sub --hosts "$(hosts_of c1 c2 r1)" --count "$count" --interval "$SEED_INTERVAL" \
        --concurrency "$SEED_CONCURRENCY" --topic 't/bench/+/%i/sub/+/#' --duration 120 --ready-file "$ready" \
        --client-id-prefix "$name-" --json >"$RESULTS_DIR/$name-bench.json" 2>"$WORK_DIR/$name-bench.err" &
      bench_pid=$!
      BENCH_PIDS+=("$bench_pid")
      # shellcheck disable=SC2046 # node_args prints one word per line
      watch_bench_tables "$bench_pid" "$WORK_DIR/$name-bench.err" "$RESULTS_DIR/$name-watch.json" 60 --ready-file "$ready" --poll-from "$POLL_FROM" --expect "$(seed_expect "$count")" $(node_args c1 c2 r1)
      # CPU used until now: the bench client (all of its life so far) and the three nodes; "client nodes ticks/s".
      echo "$(cpu_ticks "$bench_pid") $(($(sum_ticks "${NODE_PID[c1]}" "${NODE_PID[c2]}" "${NODE_PID[r1]}") - nodes_before)) $(getconf CLK_TCK)" \
        >"$RESULTS_DIR/$name.cpu"
      removed_at=$(now_ms)
      stop_bench "$bench_pid"
      # shellcheck disable=SC2046
      watch_tables "$RESULTS_DIR/$name-removed.json" 30 --since-epoch-ms "$removed_at" --expect c1=0,c2=0,r1=0 $(node_args c1 c2 r1)
      log "  cluster, $count clients, run $run: $(node -e '
        const w = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        console.log(`subscribed ${w.subscribedMs.toFixed(0)} ms, visible everywhere ${w.allVisibleMs.toFixed(0)} ms, total ${w.totalMs.toFixed(0)} ms (poll period ${w.poll.periodMs.mean.toFixed(1)} ms)`)' \
        "$RESULTS_DIR/$name-watch.json"); load $(load_average)"
      seed_reference solo "$count" "$run"
      seed_reference mosquitto "$count" "$run"
    done
    if [[ "${PROFILE:-0}" == 1 ]]; then profile_stop "seed-$count" c1 c2 r1; fi
  done
}

# seed_reference solo|mosquitto N RUN: the same sub load against one standalone broker (no routes to sync), for the
# floor this machine and the bench client set. Times from the report: first CONNECT to last SUBACK.
seed_reference() {
  local target=$1 count=$2 run=$3 out before
  out="$RESULTS_DIR/seedref-$count-$run-$target.json"
  before=$(cpu_ticks "${NODE_PID[$target]}")
  "${BENCH[@]}" sub --hosts "$(hosts_of "$target")" --count "$count" --interval "$SEED_INTERVAL" --concurrency "$SEED_CONCURRENCY" \
    --topic 't/bench/+/%i/sub/+/#' --duration 0 --client-id-prefix "ref-$count-$run-" --json >"$out" \
    || die "seed reference run against $target failed"
  echo "0 $(($(cpu_ticks "${NODE_PID[$target]}") - before)) $(getconf CLK_TCK)" >"${out%.json}.cpu"
  log "  $target, $count clients, run $run: subscribed $(node -e '
    console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).subscribe.elapsedMs.toFixed(0))' "$out") ms"
}

# run_pub_case MODE QOS PAIRS TARGET [PUBLISH_DELAY_S FILE_SUFFIX]; TARGET is solo (the standalone node) or cross
# (publishers on r1, subscribers on c1). Writes <mode>-q<qos>-<n>x<n>-<target><suffix>.json and .cpu (CPU ticks of
# the broker processes during the run).
run_pub_case() {
  local mode=$1 qos=$2 pairs=$3 target=$4 delay=${5:-$PUBLISH_DELAY} rate=0 seconds=$TPUT_SECONDS before after pids=() where=()
  if [[ $mode == lat ]]; then rate=$((LAT_RATE_TOTAL / pairs)); seconds=$LAT_SECONDS; fi
  if [[ $target == solo ]]; then
    pids=("${NODE_PID[solo]}"); where=(--hosts "$(hosts_of solo)")
  else
    pids=("${NODE_PID[r1]}" "${NODE_PID[c1]}" "${NODE_PID[c2]}"); where=(--hosts "$(hosts_of r1)" --sub-hosts "$(hosts_of c1)")
  fi
  local out="$RESULTS_DIR/$mode-q$qos-${pairs}x$pairs-$target${6:-}.json"
  require_alive c1 c2 r1 solo
  before=$(sum_ticks "${pids[@]}")
  "${BENCH[@]}" pub "${where[@]}" --count "$pairs" --subscribers "$pairs" --interval 1 --qos "$qos" \
    --payload-size "$PAYLOAD" --rate "$rate" --duration "$seconds" --inflight 20 --e2e-window 500 --drain-timeout "${DRAIN:-5}" \
    --publish-delay "$delay" --client-id-prefix "$target-$mode-" --json >"$out" || die "bench $mode QoS $qos ${pairs}x$pairs on $target failed"
  after=$(sum_ticks "${pids[@]}")
  echo "$((after - before)) $(getconf CLK_TCK)" >"${out%.json}.cpu"
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const l = r.receive.latencyMs ?? {};
    console.error(`  ${process.argv[2].padEnd(6)} ${String(Math.round(r.receive.ratePerSec)).padStart(7)} msg/s received, ` +
      `${r.receive.missing} missing, p50 ${l.p50} ms, p99 ${l.p99} ms, client cpu ${Math.round(r.clientCpu.percentOfOneCore)}%`);' "$out" "$target"
}

# Dies with the end of its log when a node is gone: a crash must not pass for a slow run.
require_alive() {
  local name
  for name in "$@"; do
    kill -0 "${NODE_PID[$name]}" 2>/dev/null && continue
    local log="$WORK_DIR/$name.log"
    [[ $name == solo ]] && log="$WORK_DIR/meridian-solo.log"
    die "node $name (pid ${NODE_PID[$name]}) is not running; the end of its log: $(tail -n 5 "$log" 2>/dev/null)"
  done
}

sum_ticks() { local pid total=0; for pid in "$@"; do total=$((total + $(cpu_ticks "$pid"))); done; echo "$total"; }

run_tput() {
  local qos pairs mode target order run
  log "warming up the standalone node and the r1 -> c1 path (2 s each)"
  "${BENCH[@]}" pub --hosts "$(hosts_of solo)" --count 2 --subscribers 2 --qos 1 --duration 2 --e2e-window 500 \
    --client-id-prefix warm-solo- >/dev/null || die "warm-up of the standalone node failed"
  "${BENCH[@]}" pub --hosts "$(hosts_of r1)" --sub-hosts "$(hosts_of c1)" --count 2 --subscribers 2 --qos 1 --duration 2 \
    --e2e-window 500 --client-id-prefix warm-cross- >/dev/null || die "warm-up of r1 -> c1 failed"
  for qos in $QOS_LEVELS; do
    for pairs in $PAIRS; do
      for mode in tput lat; do
        log "QoS $qos, $pairs -> $pairs, $mode (load $(load_average))"
        # Alternate which goes first so a change in background load does not always favour one.
        if (( (qos + pairs) % 2 == 0 )); then order=(solo cross); else order=(cross solo); fi
        for target in "${order[@]}"; do run_pub_case "$mode" "$qos" "$pairs" "$target"; done
      done
    done
  done
  # What the publish delay hides: messages published on r1 right after the subscriber's SUBACK on c1, before the
  # route got to r1, reach nobody (the route is asynchronous). Counted, not hidden: 2000 msg/s from the first ms.
  log "route window: QoS 1 at $LAT_RATE_TOTAL msg/s on r1 from the subscriber's SUBACK on c1, no publish delay"
  # The lost messages never arrive: a 1 s drain is enough for the rest.
  for run in 1 2 3; do DRAIN=1 run_pub_case lat 1 1 cross 0 "-nodelay-$run"; done
}

record_memory() { # LABEL: memory-<label>.txt with "node rss_kib heap_bytes" lines
  local name
  for name in c1 c2 r1; do echo "$name $(memory_of "$name")"; done >"$RESULTS_DIR/memory-$1.txt"
}

run_bootstrap() {
  local routes=$((BOOT_CLIENTS * BOOT_TOPICS)) topics=() k ready bench_pid started
  for k in $(seq 1 "$BOOT_TOPICS"); do topics+=(--topic "boot/%i/$k/+/#"); done
  require_alive c1 c2 r1
  sleep "$SETTLE"
  record_memory before
  ready="$WORK_DIR/boot.ready"
  log "subscribing $BOOT_CLIENTS clients x $BOOT_TOPICS filters = $routes routes on c1"
  "${BENCH[@]}" sub --hosts "$(hosts_of c1)" --count "$BOOT_CLIENTS" --interval 0 --concurrency 100 "${topics[@]}" \
    --duration 600 --ready-file "$ready" --client-id-prefix boot- --json >"$RESULTS_DIR/boot-bench.json" 2>"$WORK_DIR/boot-bench.err" &
  bench_pid=$!
  BENCH_PIDS+=("$bench_pid")
  # shellcheck disable=SC2046
  watch_bench_tables "$bench_pid" "$WORK_DIR/boot-bench.err" "$RESULTS_DIR/boot-seed-watch.json" 180 --ready-file "$ready" --expect "c1=$routes,c2=0,r1=0" $(node_args c1 c2 r1)
  sleep "$SETTLE"
  require_alive c1 c2 r1
  record_memory after
  log "starting a new replicant r2 against $routes routes (load $(load_average))"
  allocate_ports r2
  started=$(now_ms)
  start_cluster_node r2 replicant info
  # shellcheck disable=SC2046
  watch_tables "$RESULTS_DIR/boot-r2-watch.json" 60 --since-epoch-ms "$started" --log "$WORK_DIR/r2.log" \
    --expect "c1=$routes,c2=0,r1=0,r2=0" $(node_args r2)
  echo "r2 $(memory_of r2)" >"$RESULTS_DIR/memory-r2.txt"
  log "  r2 holds $routes routes $(node -e '
    const w = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`${w.allVisibleMs.toFixed(0)} ms after its start, ${(w.allVisibleMs - w.log.firstPeerConnectedMs).toFixed(0)} ms after its first peer connected`)' \
    "$RESULTS_DIR/boot-r2-watch.json")"
  stop_bench "$bench_pid"
}

print_profiles() {
  local count profile
  for count in $SEED_COUNTS; do
    echo
    echo "Where the CPU went during the seed runs with $count clients (c1, c2, r1; each sample to its job):"
    echo
    node "$REPO_ROOT/dist/e2e/bench/lib/cluster-profile.js" "$RESULTS_DIR/seed-$count"-{c1,c2,r1}.cpuprofile
    for profile in "$RESULTS_DIR/seed-$count"-{c1,c2,r1}.cpuprofile; do
      echo
      echo "$(basename "$profile" .cpuprofile), self time by function: $profile"
      node "$REPO_ROOT/dist/e2e/bench/lib/cpuprofile-top.js" "$profile" 15
    done
  done
}

build_meridian
for helper in cluster-watch cluster-summarize cluster-node-hook cluster-profile; do
  [[ -f "$REPO_ROOT/dist/e2e/bench/lib/$helper.js" ]] || die "dist/e2e/bench/lib/$helper.js is missing after the build"
done
head -c 32 /dev/urandom | base64 >"$SECRET_FILE"
note "machine: $(machine_summary)"
note "load average before: $(load_average)"
note "phases: $PHASES; poll every $POLL_MS ms"

for name in c1 c2 r1; do allocate_ports "$name"; done
start_cluster_node c1 core warn
start_cluster_node c2 core warn
start_cluster_node r1 replicant warn
for name in c1 c2 r1; do wait_for_port "${ADMIN_PORT[$name]}" 30 "${NODE_PID[$name]}"; done
# shellcheck disable=SC2046
watch_tables "$WORK_DIR/formed.json" 30 --since-epoch-ms "$(now_ms)" --expect c1=0,c2=0,r1=0 $(node_args c1 c2 r1)
log "cluster formed: c1, c2 (cores), r1 (replicant)"

if has_phase tput || has_phase seed; then
  MQTT_PORT[solo]=$(free_port)
  start_meridian "${MQTT_PORT[solo]}" solo
  NODE_PID[solo]=$BROKER_PID
fi
if has_phase seed; then
  ensure_mosquitto >/dev/null
  MQTT_PORT[mosquitto]=$(free_port)
  start_mosquitto "${MQTT_PORT[mosquitto]}"
  NODE_PID[mosquitto]=$BROKER_PID
fi

started=$SECONDS
if has_phase seed; then log "phase seed (load $(load_average))"; run_seed; note "load average after seed: $(load_average)"; fi
if has_phase tput; then log "phase tput (load $(load_average))"; run_tput; note "load average after tput: $(load_average)"; fi
if has_phase bootstrap; then log "phase bootstrap (load $(load_average))"; run_bootstrap; note "load average after bootstrap: $(load_average)"; fi
if has_phase bootstrap && [[ $ROUTESYNC_BENCH == 1 ]]; then
  node --expose-gc "$REPO_ROOT/dist/broker/src/routesync/bench.js" >"$RESULTS_DIR/routesync-bench.txt" 2>&1 \
    || die "routesync micro-benchmark failed: $(cat "$RESULTS_DIR/routesync-bench.txt")"
fi
note "phases took $((SECONDS - started)) s; load average at the end: $(load_average)"

echo
node "$REPO_ROOT/dist/e2e/bench/lib/cluster-summarize.js" "$RESULTS_DIR"
if [[ "${PROFILE:-0}" == 1 ]]; then print_profiles; fi
echo
echo "JSON reports: $RESULTS_DIR$([[ "${KEEP:-0}" == 1 || "$RESULTS_DIR" != "$WORK_DIR"/* ]] && echo '' || echo ' (removed; KEEP=1 keeps them)')"
