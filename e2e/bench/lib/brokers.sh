# Shared by e2e/bench/single-node.sh and e2e/bench/memory.sh: start/stop Meridian and mosquitto on loopback,
# wait for their ports, read their RSS. Source it after setting REPO_ROOT and WORK_DIR.
# Every process started here is recorded in STARTED_PIDS and stopped by PID in stop_started_brokers.

STARTED_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

ensure_mosquitto() {
  if ! command -v mosquitto >/dev/null 2>&1; then
    log "mosquitto is missing: installing it from apt"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null \
      || die "could not install mosquitto from apt"
  fi
  # Debian's package enables a system service on 1883; we only run our own instances on free ports.
  mosquitto -h 2>/dev/null | head -n 1 || true
}

build_meridian() {
  if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building Meridian (npx tsc; SKIP_BUILD=1 skips)"
    (cd "$REPO_ROOT" && npx tsc -p tsconfig.json --noEmitOnError false >/dev/null 2>&1) || true
  fi
  [[ -f "$REPO_ROOT/dist/broker/src/cli/main.js" ]] || die "dist/broker/src/cli/main.js is missing after the build"
}

free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

wait_for_port() { # port timeout_s pid
  local port=$1 deadline=$((SECONDS + $2)) pid=$3
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "process $pid exited before listening on $port"
    ((SECONDS < deadline)) || die "nothing listening on 127.0.0.1:$port after $2 s"
    sleep 0.1
  done
}

# start_mosquitto PORT [extra config lines...]; sets BROKER_PID
start_mosquitto() {
  local port=$1; shift
  local conf="$WORK_DIR/mosquitto-$port.conf"
  { printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port"; printf '%s\n' "$@"; } >"$conf"
  mosquitto -c "$conf" >"$WORK_DIR/mosquitto-$port.log" 2>&1 &
  BROKER_PID=$!
  STARTED_PIDS+=("$BROKER_PID")
  wait_for_port "$port" 10 "$BROKER_PID"
}

# start_meridian PORT NAME [extra node flags, e.g. --cpu-prof --cpu-prof-dir D]; sets BROKER_PID
start_meridian() {
  local port=$1 name=$2; shift 2
  local admin; admin=$(free_port)
  node "$@" "$REPO_ROOT/dist/broker/src/cli/main.js" broker --mqtt-port "$port" --admin-port "$admin" \
    --data-dir "$WORK_DIR/data-$name" --node-name "$name" --log-level warn ${MERIDIAN_FLAGS:-} \
    >"$WORK_DIR/meridian-$name.log" 2>&1 &
  BROKER_PID=$!
  STARTED_PIDS+=("$BROKER_PID")
  wait_for_port "$port" 20 "$BROKER_PID"
}

# Stops one broker by PID with SIGTERM (Meridian writes its --cpu-prof file on a clean exit), SIGKILL after 10 s.
stop_pid() {
  local pid=$1 waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do sleep 0.1; waited=$((waited + 1)); done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_started_brokers() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid"; done
  STARTED_PIDS=()
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# User + system CPU time of a process, in clock ticks (getconf CLK_TCK per second).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

machine_summary() {
  local cpu; cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  printf '%s, %s cores, %s MiB RAM, %s, node %s, %s' "$cpu" "$(nproc)" "$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)" \
    "$(uname -sr)" "$(node --version)" "$(mosquitto -h 2>/dev/null | head -n 1 || true)"
}

load_average() { cut -d' ' -f1-3 /proc/loadavg; }
