#!/usr/bin/env bash
# Local backing services for keyflow's integration tests.
#
#   bash scripts/services.sh start    # idempotent; `npm run services`
#   bash scripts/services.sh stop     # `npm run services:stop`; leaves the machine's Redis/PostgreSQL up
#   bash scripts/services.sh status
#
# What runs (all on 127.0.0.1):
#   Redis 6379, PostgreSQL 5432 (db "test")      machine services, started only if down
#   Apache Kafka KRaft broker+controller 9092/9093  jars from Maven Central, cached in .services/
#   Kafka HTTP bridge 8082 (Strimzi REST v2 API)  see start_bridge
#   Upstash Redis REST front 8079, Neon wsproxy front 6543  scripts/fronts/*.ts, if present
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SVC="$ROOT/.services"
LOGS="$SVC/logs"
RUN="$SVC/run"
export PATH="$ROOT/node_modules/.bin:$PATH"

KAFKA_VERSION="4.1.1"
LOG4J_VERSION="2.24.3"
KAFKA_HOME="$SVC/kafka-$KAFKA_VERSION"
KAFKA_DATA="$SVC/kafka-data"
KAFKA_PORT=9092
CONTROLLER_PORT=9093
BRIDGE_PORT=8082
UPSTASH_PORT=8079
NEON_PORT=6543

KAFKA_WAIT_S=90
BRIDGE_WAIT_S=60
FRONT_WAIT_S=20
STOP_WAIT_S=30

say() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid from $RUN/<name>.pid if that process is alive and its command line contains <marker>
# (guards against a stale pid file pointing at a recycled pid).
live_pid() {
  local name=$1 marker=$2 pid
  [[ -f "$RUN/$name.pid" ]] || return 1
  pid=$(<"$RUN/$name.pid")
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker" || return 1
  echo "$pid"
}

# wait_until <seconds> <description> <command...>: polls every 0.5 s; returns 1 on timeout.
wait_until() {
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.5
  done
  say "  $what ready after $((SECONDS - ${START_T:-0}))s"
}

# launch <name> <logfile> <command...>: detached (own session, so it outlives the caller), pid to $RUN/<name>.pid.
launch() {
  local name=$1 log=$2; shift 2
  [[ -f "$log" ]] && mv -f "$log" "$log.1"
  nohup setsid "$@" >"$log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

fail_with_log() {
  local what=$1 log=$2
  say "$what did not become ready; last lines of $log:"
  tail -n 40 "$log" >&2 || true
  exit 1
}

# ---------------------------------------------------------------- Redis / PostgreSQL

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    say "redis: already running on 127.0.0.1:6379"
    return
  fi
  say "redis: starting"
  START_T=$SECONDS
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null \
    || die "redis-server failed to start"
  wait_until 15 "redis" sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG' \
    || die "redis did not answer PING within 15s"
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    say "postgres: already running on 127.0.0.1:5432"
  else
    say "postgres: starting"
    START_T=$SECONDS
    # shellcheck disable=SC2012
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
    wait_until 30 "postgres" pg_isready -q -h 127.0.0.1 -p 5432 || die "postgres not ready within 30s"
  fi
  if [[ "$(psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]]; then
    say "postgres: creating database test"
    createdb -h 127.0.0.1 -U postgres test
  fi
}

# ---------------------------------------------------------------- Kafka

# Resolves the broker's runtime classpath from Maven Central into $KAFKA_HOME/libs once.
# kafka_2.13's POM carries no logging backend, so Log4j2 (what Kafka 4.x ships with) is added.
fetch_kafka() {
  if [[ -f "$KAFKA_HOME/libs/.complete" ]]; then
    return
  fi
  say "kafka: resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central (first run only; may take a few minutes)"
  mkdir -p "$KAFKA_HOME"
  rm -rf "$KAFKA_HOME/libs"
  cat >"$KAFKA_HOME/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.keyflow</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  START_T=$SECONDS
  mvn -B -ntp -f "$KAFKA_HOME/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs" >"$LOGS/kafka-fetch.log" 2>&1 \
    || { tail -n 30 "$LOGS/kafka-fetch.log" >&2; die "mvn could not resolve Kafka $KAFKA_VERSION (log: $LOGS/kafka-fetch.log)"; }
  touch "$KAFKA_HOME/libs/.complete"
  say "kafka: $(find "$KAFKA_HOME/libs" -name '*.jar' | wc -l) jars cached in ${KAFKA_HOME#"$ROOT"/} after $((SECONDS - START_T))s"
}

write_kafka_config() {
  cat >"$KAFKA_HOME/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
auto.create.topics.enable=true
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$KAFKA_HOME/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.clients.name = org.apache.kafka.clients
logger.clients.level = warn
EOF
}

KAFKA_JAVA=(java -Xms128m -Xmx512m -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=file:$KAFKA_HOME/log4j2.properties" -cp "$KAFKA_HOME/libs/*")

format_kafka_storage() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return
  say "kafka: formatting storage in ${KAFKA_DATA#"$ROOT"/}"
  mkdir -p "$KAFKA_DATA"
  local cluster_id
  cluster_id=$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  [[ -n "$cluster_id" ]] || die "kafka StorageTool random-uuid printed nothing"
  "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_HOME/server.properties" \
    >"$LOGS/kafka-format.log" 2>&1 || { cat "$LOGS/kafka-format.log" >&2; die "kafka storage format failed"; }
}

kafka_started() {
  port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$LOGS/kafka.log"
}

start_kafka() {
  local pid
  if pid=$(live_pid kafka kafka.Kafka); then
    say "kafka: already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
    START_T=$SECONDS
    kafka_started || wait_until "$KAFKA_WAIT_S" "kafka" kafka_started || fail_with_log "kafka" "$LOGS/kafka.log"
    return
  fi
  if port_open "$KAFKA_PORT"; then
    # Another checkout (a CI clone, say) may have started the same services: share them.
    say "kafka: 127.0.0.1:$KAFKA_PORT is already served by a process this checkout did not start; using it"
    return
  fi
  fetch_kafka
  write_kafka_config
  format_kafka_storage
  say "kafka: starting $KAFKA_VERSION (KRaft broker+controller) on 127.0.0.1:$KAFKA_PORT, log .services/logs/kafka.log"
  START_T=$SECONDS
  launch kafka "$LOGS/kafka.log" "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_HOME/server.properties"
  wait_until "$KAFKA_WAIT_S" "kafka" kafka_started || fail_with_log "kafka" "$LOGS/kafka.log"
}

# ---------------------------------------------------------------- Kafka HTTP bridge

# The real Strimzi Kafka Bridge is used when KAFKA_BRIDGE_HOME points at an unpacked official
# release (its libs/ folder). io.strimzi:kafka-bridge is not published on Maven Central (checked
# for 0.31.1-0.33.1: 404, no maven-metadata.xml), so by default scripts/fronts/kafka-rest.ts runs
# instead: the same produce API (REST v2, json/binary/text), on the same port.
start_bridge() {
  local marker pid
  if [[ -n "${KAFKA_BRIDGE_HOME:-}" ]]; then marker=io.strimzi.kafka.bridge.Application; else marker=kafka-rest.ts; fi
  if pid=$(live_pid bridge "$marker"); then
    say "bridge: already running (pid $pid) on 127.0.0.1:$BRIDGE_PORT"
    START_T=$SECONDS
    bridge_ready || wait_until "$BRIDGE_WAIT_S" "bridge" bridge_ready || fail_with_log "bridge" "$LOGS/bridge.log"
    return
  fi
  if port_open "$BRIDGE_PORT"; then
    say "bridge: 127.0.0.1:$BRIDGE_PORT is already served by a process this checkout did not start; using it"
    START_T=$SECONDS
    bridge_ready || wait_until "$BRIDGE_WAIT_S" "bridge" bridge_ready || die "bridge: 127.0.0.1:$BRIDGE_PORT does not answer /healthy"
    return
  fi
  START_T=$SECONDS
  if [[ -n "${KAFKA_BRIDGE_HOME:-}" ]]; then
    [[ -d "$KAFKA_BRIDGE_HOME/libs" ]] || die "KAFKA_BRIDGE_HOME=$KAFKA_BRIDGE_HOME has no libs/ folder"
    mkdir -p "$SVC/bridge"
    cat >"$SVC/bridge/application.properties" <<EOF
bridge.id=keyflow-local
http.host=127.0.0.1
http.port=$BRIDGE_PORT
kafka.bootstrap.servers=127.0.0.1:$KAFKA_PORT
kafka.producer.acks=all
kafka.producer.enable.idempotence=true
kafka.producer.max.block.ms=10000
kafka.consumer.auto.offset.reset=earliest
EOF
    say "bridge: starting Strimzi Kafka Bridge from $KAFKA_BRIDGE_HOME on 127.0.0.1:$BRIDGE_PORT"
    launch bridge "$LOGS/bridge.log" java -Xmx256m \
      "-Dlog4j2.configurationFile=file:$KAFKA_BRIDGE_HOME/config/log4j2.properties" \
      -cp "$KAFKA_BRIDGE_HOME/libs/*" io.strimzi.kafka.bridge.Application \
      "--config-file=$SVC/bridge/application.properties"
  else
    say "bridge: starting scripts/fronts/kafka-rest.ts (Strimzi REST v2 produce API over kafkajs) on 127.0.0.1:$BRIDGE_PORT"
    launch bridge "$LOGS/bridge.log" env BRIDGE_HOST=127.0.0.1 "BRIDGE_PORT=$BRIDGE_PORT" \
      "KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT" bun "$ROOT/scripts/fronts/kafka-rest.ts"
  fi
  wait_until "$BRIDGE_WAIT_S" "bridge" bridge_ready || fail_with_log "bridge" "$LOGS/bridge.log"
}

bridge_ready() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$BRIDGE_PORT/ready" || true)
  [[ "$code" == 204 || "$code" == 200 ]]
}

# ---------------------------------------------------------------- HTTP fronts

start_front() {
  local name=$1 file=$2 port=$3 pid; shift 3
  if [[ ! -f "$ROOT/$file" ]]; then
    say "$name: $file does not exist yet; skipped"
    return
  fi
  if pid=$(live_pid "$name" "$file"); then
    say "$name: already running (pid $pid) on 127.0.0.1:$port"
    START_T=$SECONDS
    port_open "$port" || wait_until "$FRONT_WAIT_S" "$name" port_open "$port" || fail_with_log "$name" "$LOGS/$name.log"
    return
  fi
  if port_open "$port"; then
    say "$name: 127.0.0.1:$port is already served by a process this checkout did not start; using it"
    return
  fi
  say "$name: starting $file on 127.0.0.1:$port"
  START_T=$SECONDS
  (cd "$ROOT" && launch "$name" "$LOGS/$name.log" env "$@" bun "$file")
  wait_until "$FRONT_WAIT_S" "$name" port_open "$port" || fail_with_log "$name" "$LOGS/$name.log"
}

start_fronts() {
  start_front upstash-redis scripts/fronts/upstash-redis.ts "$UPSTASH_PORT" UPSTASH_FRONT_HOST=127.0.0.1 \
    "UPSTASH_FRONT_PORT=$UPSTASH_PORT" "UPSTASH_FRONT_TOKEN=${UPSTASH_FRONT_TOKEN:-keyflow-local-token}" \
    "REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}"
  start_front neon-wsproxy scripts/fronts/neon-wsproxy.ts "$NEON_PORT" NEON_PROXY_HOST=127.0.0.1 "NEON_PROXY_PORT=$NEON_PORT"
}

# ---------------------------------------------------------------- stop / status

# stop_one <name> <marker>: SIGTERM, wait up to STOP_WAIT_S, then SIGKILL.
stop_one() {
  local name=$1 marker=$2 pid
  if ! pid=$(live_pid "$name" "$marker"); then
    say "$name: not running"
    rm -f "$RUN/$name.pid"
    return
  fi
  say "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_WAIT_S))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      say "$name: still alive after ${STOP_WAIT_S}s; killing"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  rm -f "$RUN/$name.pid"
}

cmd_stop() {
  stop_one neon-wsproxy scripts/fronts/neon-wsproxy.ts
  stop_one upstash-redis scripts/fronts/upstash-redis.ts
  if [[ -n "${KAFKA_BRIDGE_HOME:-}" ]]; then stop_one bridge io.strimzi.kafka.bridge.Application; else stop_one bridge kafka-rest.ts; fi
  stop_one kafka kafka.Kafka
  say "redis and postgres are machine services and were left running"
}

status_line() {
  local name=$1 port=$2 state=$3
  printf '  %-14s 127.0.0.1:%-5s %s\n' "$name" "$port" "$state"
}

cmd_status() {
  local s
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then s=up; else s=down; fi
  status_line redis 6379 "$s"
  if pg_isready -q -h 127.0.0.1 -p 5432; then s=up; else s=down; fi
  status_line postgres 5432 "$s"
  local entry name port marker pid
  for entry in kafka:$KAFKA_PORT:kafka.Kafka bridge:$BRIDGE_PORT:bridge \
    upstash-redis:$UPSTASH_PORT:upstash-redis.ts neon-wsproxy:$NEON_PORT:neon-wsproxy.ts; do
    IFS=: read -r name port marker <<<"$entry"
    if [[ "$marker" == bridge ]]; then marker=$([[ -n "${KAFKA_BRIDGE_HOME:-}" ]] && echo io.strimzi.kafka.bridge.Application || echo kafka-rest.ts); fi
    if pid=$(live_pid "$name" "$marker"); then
      if port_open "$port"; then s="up (pid $pid)"; else s="starting (pid $pid, port closed)"; fi
    elif port_open "$port"; then
      s="port open, not started by this script"
    else
      s=down
    fi
    status_line "$name" "$port" "$s"
  done
}

check_java() {
  command -v java >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
  local major
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)
  ((${major:-0} >= 17)) || die "java is version ${major:-unknown}; Kafka $KAFKA_VERSION needs 17+"
}

cmd_start() {
  local t0=$SECONDS
  check_java
  command -v bun >/dev/null || die "bun not found; run npm install first"
  ensure_redis
  ensure_postgres
  start_kafka
  start_bridge
  start_fronts
  say "all services up in $((SECONDS - t0))s"
}

main() {
  mkdir -p "$LOGS" "$RUN"
  case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
  esac
}

main "$@"
