# shellcheck shell=bash
# Starts and stops the servers scripts/test runs, all on 127.0.0.1 only, each tracked by
# its PID so that exactly the processes started here are stopped (servers_stop_all in an
# EXIT trap).
#
# Source after install.sh, with ROOT, VENV, DYNAMODB_LOCAL_DIR, DYNAMODB_LAUNCHER_DIR and
# LOG_DIR (server logs) and RUN_DIR (scratch files of this run) set. Defines:
#   start_dynamodb_local          spawns it, sets DYNAMODB_PID
#   wait_dynamodb_local           waits until it answers; sets DYNAMODB_ENDPOINT
#   start_moto, check_moto        sets MOTO_PID, MOTO_ENDPOINT; checks it answers
#   start_callsign_local NAME [VAR=VALUE...]
#                                 runs target/debug/callsign-local with the extra environment;
#                                 sets CALLSIGN_PID, CALLSIGN_ENDPOINT, CALLSIGN_ACCESS_KEY,
#                                 CALLSIGN_RESOURCE_ID
#   server_stop PID               SIGTERM, then SIGKILL after 15 s
#   servers_stop_all              stops every server still running
#   show_log NAME                 prints the tail of a server's log

declare -A SERVER_NAMES=() # PID -> name
declare -A SERVER_LOGS=()  # name -> log file
LOOPBACK=127.0.0.1

# Ask the kernel to kill a server if this script dies without running its traps (SIGKILL).
if command -v setpriv >/dev/null 2>&1 && setpriv --pdeathsig KILL true 2>/dev/null; then
  _PDEATHSIG=(setpriv --pdeathsig KILL --)
else
  _PDEATHSIG=()
fi

# _spawn NAME CMD... : runs CMD in the background with its output in LOG_DIR/NAME.log;
# sets SPAWNED_PID (the PID of CMD itself: bash execs the simple command in the child).
_spawn() {
  local name="$1"
  shift
  local log="$LOG_DIR/$name.log"
  : >"$log"
  SERVER_LOGS[$name]="$log"
  "${_PDEATHSIG[@]}" "$@" </dev/null >"$log" 2>&1 &
  SPAWNED_PID=$!
  SERVER_NAMES[$SPAWNED_PID]="$name"
}

_alive() { kill -0 "$1" 2>/dev/null; }

show_log() {
  local log="${SERVER_LOGS[$1]:-$LOG_DIR/$1.log}"
  [ -f "$log" ] || return 0
  echo "----- last 40 lines of $log -----"
  tail -n 40 "$log"
  echo "----- end of $log -----"
}

server_stop() {
  local pid="$1" i
  [ -n "$pid" ] && [ -n "${SERVER_NAMES[$pid]:-}" ] || return 0
  if _alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      _alive "$pid" || break
      sleep 0.1
    done
    if _alive "$pid"; then
      echo "${SERVER_NAMES[$pid]} (pid $pid) ignored SIGTERM for 15 s: sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # Reap it (its exit status, e.g. 143 after SIGTERM, is no failure of ours).
  wait "$pid" 2>/dev/null || true
  unset "SERVER_NAMES[$pid]"
  return 0
}

servers_stop_all() {
  local pid
  for pid in "${!SERVER_NAMES[@]}"; do
    server_stop "$pid"
  done
}

# _wait_for SECONDS PID WHAT CMD... : polls CMD every 0.1 s until it succeeds; fails when
# the server PID exits or time runs out.
_wait_for() {
  local seconds="$1" pid="$2" what="$3" deadline
  shift 3
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! _alive "$pid"; then
      echo "$what exited before it was ready" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "$what was not ready after ${seconds}s" >&2
      return 1
    fi
    sleep 0.1
  done
}

# _assert_loopback_only PORT WHAT : every socket listening on PORT is bound to 127.0.0.1.
_assert_loopback_only() {
  local port="${1%%/*}" what="$2" addrs
  if ! command -v ss >/dev/null 2>&1; then
    echo "note: ss (iproute2) is missing: not checking $what's listening address" >&2
    return 0
  fi
  addrs="$(ss -Hltn "( sport = :$port )" | awk '{print $4}')"
  if [ -z "$addrs" ]; then
    echo "$what: nothing listens on port $port" >&2
    return 1
  fi
  if grep -qvE "^(\[::ffff:)?127\.0\.0\.1\]?:$port\$" <<<"$addrs"; then
    echo "$what listens beyond 127.0.0.1: $addrs" >&2
    return 1
  fi
}

_free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_port_open() { (exec 3<>"/dev/tcp/$LOOPBACK/$1") 2>/dev/null; }

_port_file_nonempty() { [ -s "$1" ]; }

# start_dynamodb_local spawns the JVM and returns at once; wait_dynamodb_local waits for it.
# start_dynamodb_local [NAME] : NAME (default dynamodb-local) names its log and port file.
start_dynamodb_local() {
  local name="${1:-dynamodb-local}"
  local port_file="$RUN_DIR/$name.port"
  rm -f "$port_file"
  # LoopbackDynamoDBLocal (tests/servers/) sets the Jetty connector's host to 127.0.0.1
  # before the server starts; -port 0 takes any free port, written to port_file.
  _spawn "$name" java -XX:+UseSerialGC -Djava.net.preferIPv4Stack=true \
    "-Djava.library.path=$DYNAMODB_LOCAL_DIR/DynamoDBLocal_lib" \
    -cp "$DYNAMODB_LAUNCHER_DIR:$DYNAMODB_LOCAL_DIR/DynamoDBLocal.jar" \
    LoopbackDynamoDBLocal -inMemory -disableTelemetry -port 0 -portFile "$port_file"
  DYNAMODB_PID=$SPAWNED_PID
}

# wait_dynamodb_local [NAME] : waits until DynamoDB Local answers a request, and checks
# that it listens on 127.0.0.1 only. Sets DYNAMODB_ENDPOINT (for the instance started
# last: DYNAMODB_PID).
wait_dynamodb_local() {
  local port_file="$RUN_DIR/${1:-dynamodb-local}.port"
  _wait_for 60 "$DYNAMODB_PID" "DynamoDB Local" _port_file_nonempty "$port_file" || return 1
  DYNAMODB_ENDPOINT="http://$LOOPBACK:$(tr -d '[:space:]' <"$port_file")"
  "$VENV/bin/python" "$ROOT/tests/servers/probe.py" dynamodb "$DYNAMODB_ENDPOINT" ||
    { echo "DynamoDB Local does not answer ListTables at $DYNAMODB_ENDPOINT" >&2; return 1; }
  _assert_loopback_only "${DYNAMODB_ENDPOINT##*:}" "DynamoDB Local"
}

start_moto() {
  local _ port
  # moto_server takes a port number: pick a free one; if another process takes it first,
  # moto exits at once and we try another.
  for _ in 1 2 3; do
    port="$(_free_port)" || return 1
    _spawn moto "$VENV/bin/moto_server" -H "$LOOPBACK" -p "$port"
    MOTO_PID=$SPAWNED_PID
    MOTO_ENDPOINT="http://$LOOPBACK:$port"
    if _wait_for 30 "$MOTO_PID" "moto" _port_open "$port"; then
      return 0
    fi
    server_stop "$MOTO_PID"
  done
  return 1
}

# Checks that moto answers a request and listens on 127.0.0.1 only.
check_moto() {
  "$VENV/bin/python" "$ROOT/tests/servers/probe.py" secretsmanager "$MOTO_ENDPOINT" ||
    { echo "moto does not answer ListSecrets at $MOTO_ENDPOINT" >&2; return 1; }
  _assert_loopback_only "${MOTO_ENDPOINT##*:}" "moto"
}

_read_ready_file() {
  local out
  out="$("$VENV/bin/python" "$ROOT/tests/servers/probe.py" ready-file "$1")" || return 1
  read -r CALLSIGN_ENDPOINT CALLSIGN_ACCESS_KEY CALLSIGN_RESOURCE_ID <<<"$out"
}

# Parses the ready file once it exists (a partly written one is retried at the next poll).
_ready_file_complete() { [ -s "$1" ] && _read_ready_file "$1"; }

# start_callsign_local NAME [VAR=VALUE...] : NAME names its log (LOG_DIR/NAME.log).
start_callsign_local() {
  local name="$1"
  shift
  local ready="$RUN_DIR/$name.ready.json"
  rm -f "$ready"
  # shellcheck disable=SC2034 # read by the caller
  CALLSIGN_ENDPOINT="" CALLSIGN_ACCESS_KEY="" CALLSIGN_RESOURCE_ID=""
  if [ ! -x "$CALLSIGN_LOCAL_BIN" ]; then
    echo "$CALLSIGN_LOCAL_BIN is missing: did the build fail?" >&2
    return 1
  fi
  _spawn "$name" env CALLSIGN_PORT=0 "CALLSIGN_READY_FILE=$ready" "$@" "$CALLSIGN_LOCAL_BIN"
  CALLSIGN_PID=$SPAWNED_PID
  if ! _wait_for 30 "$CALLSIGN_PID" "$name" _ready_file_complete "$ready"; then
    show_log "$name"
    server_stop "$CALLSIGN_PID"
    return 1
  fi
  _read_ready_file "$ready" || return 1
  if ! _assert_loopback_only "${CALLSIGN_ENDPOINT##*:}" "$name"; then
    server_stop "$CALLSIGN_PID"
    return 1
  fi
  echo "$name: $CALLSIGN_ENDPOINT, resource $CALLSIGN_RESOURCE_ID (pid $CALLSIGN_PID)"
}
