#!/usr/bin/env bash
# Development services for mqferry: a single-node Apache Kafka (KRaft) and a Mosquitto 2 broker,
# both bound to 127.0.0.1, with their data under .dev/.
#
#   scripts/services.sh install                 apt: mosquitto, mosquitto-clients, kcat; mvn: Kafka jars
#   scripts/services.sh start [SERVICE...]      start kafka and mosquitto (reuses ours if already running),
#                                               wait until ready
#   scripts/services.sh stop [SERVICE...]       stop only the processes named in .dev/*.pid
#   scripts/services.sh status                  one line per service; exit 0 only if both run
#   scripts/services.sh env                     MQFERRY_* variables for clients, to `eval`
#   scripts/services.sh create-topic NAME [PARTITIONS]   idempotent
#   scripts/services.sh kafka-tool CLASS ARGS...         run a Kafka tool class on the broker's classpath
#
# Environment: MQFERRY_KAFKA_PORT (9092), MQFERRY_KAFKA_CONTROLLER_PORT (9093), MQFERRY_MQTT_PORT (1883),
# MQFERRY_DEV_DIR (<repo>/.dev), MQFERRY_SERVICES_TIMEOUT (seconds to wait for readiness, 90).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="${MQFERRY_DEV_DIR:-$ROOT/.dev}"
KAFKA_HOME="$DEV/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_POM="$ROOT/scripts/kafka/pom.xml"
MOSQ_HOME="$DEV/mosquitto"
HOST=127.0.0.1
KAFKA_PORT="${MQFERRY_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${MQFERRY_KAFKA_CONTROLLER_PORT:-9093}"
MQTT_PORT="${MQFERRY_MQTT_PORT:-1883}"
TIMEOUT="${MQFERRY_SERVICES_TIMEOUT:-90}"
KAFKA_PID_FILE="$DEV/kafka.pid"
MOSQ_PID_FILE="$DEV/mosquitto.pid"
# Short-lived JVMs for the command-line tools: start fast rather than run fast.
TOOL_JAVA_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM"
}

# ---------------------------------------------------------------------------------------- install

install_apt() {
    local missing=() pkg
    # chromium: the web console's end-to-end tests (tests/console) drive it headless.
    for pkg in mosquitto mosquitto-clients kcat chromium; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    local sudo=()
    [[ $EUID -eq 0 ]] || sudo=(sudo)
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt_log="$DEV/apt.log"
    {
        "${sudo[@]}" apt-get update -q &&
            "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    } >"$apt_log" 2>&1 || { tail_log "$apt_log"; die "apt-get failed (log: $apt_log)"; }
}

install_kafka() {
    local version marker
    version="$(kafka_version)"
    [[ -n $version ]] || die "no <kafka.version> in $KAFKA_POM"
    marker="$KAFKA_LIBS/.kafka-$version"
    [[ -f $marker ]] && return 0
    command -v mvn >/dev/null || die "mvn not found: install Maven (and Java 17)"
    log "fetching Apache Kafka $version jars with mvn into ${KAFKA_LIBS#"$ROOT"/}"
    rm -rf "$KAFKA_LIBS.tmp"
    mkdir -p "$KAFKA_HOME"
    local mvn_log="$KAFKA_HOME/mvn.log"
    mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" >"$mvn_log" 2>&1 ||
        { tail_log "$mvn_log"; die "mvn could not fetch the Kafka jars (log: $mvn_log)"; }
    rm -rf "$KAFKA_LIBS"
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
    touch "$KAFKA_LIBS/.kafka-$version"
}

cmd_install() {
    mkdir -p "$DEV"
    install_apt
    install_kafka
}

# ---------------------------------------------------------------------------------------- helpers

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Prints the pid in file $1 if that process is alive, else nothing (and removes a stale file).
live_pid() {
    local pid
    [[ -f $1 ]] || return 1
    pid="$(<"$1")"
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        printf '%s\n' "$pid"
        return 0
    fi
    rm -f "$1"
    return 1
}

# Who listens on a port, for error messages.
port_owner() {
    if command -v ss >/dev/null; then
        ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\))).*/\1/p' | head -n1
    fi
}

tail_log() {
    [[ -f $1 ]] || return 0
    printf -- '----- last lines of %s -----\n' "$1" >&2
    tail -n "${2:-40}" "$1" >&2
    printf -- '-----\n' >&2
}

# wait_until DESCRIPTION PIDFILE LOG COMMAND...: polls COMMAND until it succeeds.
wait_until() {
    local what="$1" pid_file="$2" logfile="$3" deadline
    shift 3
    deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ! live_pid "$pid_file" >/dev/null; then
            tail_log "$logfile"
            die "$what exited during start-up (log: $logfile)"
        fi
        if ((SECONDS >= deadline)); then
            tail_log "$logfile"
            die "$what not ready after ${TIMEOUT}s (log: $logfile)"
        fi
        sleep 0.5
    done
}

kafka_classpath() {
    [[ -f "$KAFKA_LIBS/.kafka-$(kafka_version)" ]] ||
        die "Kafka jars missing in $KAFKA_LIBS: run scripts/services.sh install"
    printf '%s/*' "$KAFKA_LIBS"
}

write_tools_log_config() {
    mkdir -p "$KAFKA_HOME"
    cat >"$KAFKA_HOME/tools-log4j2.properties" <<'EOF'
# Command-line tools: warnings and errors only, on stderr.
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

# kafka_tool CLASS ARGS...: runs one of Kafka's command-line tools.
kafka_tool() {
    local cp
    cp="$(kafka_classpath)"
    [[ -f "$KAFKA_HOME/tools-log4j2.properties" ]] || write_tools_log_config
    java "${TOOL_JAVA_OPTS[@]}" \
        "-Dlog4j2.configurationFile=$KAFKA_HOME/tools-log4j2.properties" \
        -cp "$cp" "$@"
}

kafka_ready() {
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$KAFKA_PORT" --list
}

mqtt_ready() {
    port_open "$MQTT_PORT" &&
        mosquitto_pub -h "$HOST" -p "$MQTT_PORT" -q 1 -t mqferry/dev/ready -m ready -i "mqferry-ready-$$"
}

# ---------------------------------------------------------------------------------------- kafka

write_kafka_config() {
    mkdir -p "$KAFKA_HOME/data"
    cat >"$KAFKA_HOME/server.properties" <<EOF
# Generated by scripts/services.sh on each start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_HOME/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Tests create and delete many small topics: keep segments and retention small.
log.segment.bytes=16777216
log.retention.hours=24
EOF
    cat >"$KAFKA_HOME/log4j2.properties" <<'EOF'
# Broker log: stdout, which scripts/services.sh sends to .dev/kafka/kafka.log.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
EOF
    write_tools_log_config
}

format_kafka_storage() {
    [[ -f "$KAFKA_HOME/data/meta.properties" ]] && return 0
    local cluster_id
    if [[ -s "$KAFKA_HOME/cluster.id" ]]; then
        cluster_id="$(<"$KAFKA_HOME/cluster.id")"
    else
        cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid)"
        printf '%s\n' "$cluster_id" >"$KAFKA_HOME/cluster.id"
    fi
    log "formatting Kafka storage (cluster id $cluster_id)"
    kafka_tool kafka.tools.StorageTool format --ignore-formatted \
        -t "$cluster_id" -c "$KAFKA_HOME/server.properties" >>"$KAFKA_HOME/format.log" 2>&1 ||
        { tail_log "$KAFKA_HOME/format.log"; die "formatting Kafka storage failed"; }
}

start_kafka() {
    local pid cp started
    if pid="$(live_pid "$KAFKA_PID_FILE")"; then
        log "Kafka already running (pid $pid), reusing it"
        wait_until Kafka "$KAFKA_PID_FILE" "$KAFKA_HOME/kafka.log" kafka_ready
        return 0
    fi
    local port
    for port in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
        if port_open "$port"; then
            die "port $HOST:$port is taken by another process ($(port_owner "$port")), not one this" \
                "script started; stop it or choose MQFERRY_KAFKA_PORT / MQFERRY_KAFKA_CONTROLLER_PORT"
        fi
    done
    cp="$(kafka_classpath)"
    write_kafka_config
    format_kafka_storage
    [[ -f "$KAFKA_HOME/kafka.log" ]] && mv -f "$KAFKA_HOME/kafka.log" "$KAFKA_HOME/kafka.log.1"
    log "starting Kafka $(kafka_version) on $HOST:$KAFKA_PORT"
    started=$SECONDS
    # setsid: the broker must outlive the shell that started it (and its job control).
    setsid java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$KAFKA_HOME/log4j2.properties" \
        -cp "$cp" kafka.Kafka "$KAFKA_HOME/server.properties" \
        >"$KAFKA_HOME/kafka.log" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$KAFKA_PID_FILE"
    wait_until Kafka "$KAFKA_PID_FILE" "$KAFKA_HOME/kafka.log" kafka_ready
    log "Kafka ready after $((SECONDS - started))s (pid $(<"$KAFKA_PID_FILE"))"
}

# ---------------------------------------------------------------------------------------- mosquitto

write_mosquitto_config() {
    mkdir -p "$MOSQ_HOME"
    {
        echo "# Generated by scripts/services.sh on each start; edit the script, not this file."
        echo "listener $MQTT_PORT $HOST"
        echo "allow_anonymous true"
        echo "persistence true"
        echo "persistence_location $MOSQ_HOME/"
        echo "autosave_interval 60"
        # The bridge holds PUBACKs until Kafka has a message: the broker's inflight window and queue
        # are the back-pressure, so they are large. max_packet_size stays unset: no size limit.
        echo "max_inflight_messages 1000"
        echo "max_queued_messages 1000000"
        echo "max_queued_bytes 0"
        echo "log_dest stdout"
        echo "log_type error"
        echo "log_type warning"
        echo "log_type notice"
        echo "log_type information"
        echo "connection_messages true"
        echo "log_timestamp_format %Y-%m-%dT%H:%M:%S"
        # As root, mosquitto would switch to the "mosquitto" user, who cannot write to .dev/.
        [[ $EUID -eq 0 ]] && echo "user root"
    } >"$MOSQ_HOME/mosquitto.conf"
}

start_mosquitto() {
    local pid bin started
    if pid="$(live_pid "$MOSQ_PID_FILE")"; then
        log "Mosquitto already running (pid $pid), reusing it"
        wait_until Mosquitto "$MOSQ_PID_FILE" "$MOSQ_HOME/mosquitto.log" mqtt_ready
        return 0
    fi
    if port_open "$MQTT_PORT"; then
        die "port $HOST:$MQTT_PORT is taken by another process ($(port_owner "$MQTT_PORT")), not one this" \
            "script started (a system mosquitto service?); stop it or choose MQFERRY_MQTT_PORT"
    fi
    bin="$(command -v mosquitto || true)"
    [[ -n $bin ]] || bin=/usr/sbin/mosquitto
    [[ -x $bin ]] || die "mosquitto not found: run scripts/services.sh install"
    command -v mosquitto_pub >/dev/null || die "mosquitto_pub not found: run scripts/services.sh install"
    write_mosquitto_config
    [[ -f "$MOSQ_HOME/mosquitto.log" ]] && mv -f "$MOSQ_HOME/mosquitto.log" "$MOSQ_HOME/mosquitto.log.1"
    log "starting Mosquitto on $HOST:$MQTT_PORT"
    started=$SECONDS
    setsid "$bin" -c "$MOSQ_HOME/mosquitto.conf" >"$MOSQ_HOME/mosquitto.log" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$MOSQ_PID_FILE"
    wait_until Mosquitto "$MOSQ_PID_FILE" "$MOSQ_HOME/mosquitto.log" mqtt_ready
    log "Mosquitto ready after $((SECONDS - started))s (pid $(<"$MOSQ_PID_FILE"))"
}

# ---------------------------------------------------------------------------------------- commands

cmd_start() {
    [[ $# -gt 0 ]] || set -- mosquitto kafka
    mkdir -p "$DEV"
    local service
    for service in "$@"; do
        case "$service" in
            kafka) start_kafka ;;
            mosquitto) start_mosquitto ;;
            *) die "unknown service '$service' (kafka, mosquitto)" ;;
        esac
    done
}

# stop_one NAME PIDFILE: TERM, wait up to 30s, then KILL; only the pid recorded in the file.
stop_one() {
    local name="$1" pid_file="$2" pid i
    if ! pid="$(live_pid "$pid_file")"; then
        rm -f "$pid_file"
        log "$name not running"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) did not stop in 30s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pid_file"
}

cmd_stop() {
    [[ $# -gt 0 ]] || set -- kafka mosquitto
    local service
    for service in "$@"; do
        case "$service" in
            kafka) stop_one Kafka "$KAFKA_PID_FILE" ;;
            mosquitto) stop_one Mosquitto "$MOSQ_PID_FILE" ;;
            *) die "unknown service '$service' (kafka, mosquitto)" ;;
        esac
    done
}

cmd_status() {
    local rc=0 pid
    if pid="$(live_pid "$KAFKA_PID_FILE")"; then
        echo "kafka: running pid=$pid bootstrap=$HOST:$KAFKA_PORT version=$(kafka_version)"
    else
        echo "kafka: stopped"
        rc=3
    fi
    if pid="$(live_pid "$MOSQ_PID_FILE")"; then
        echo "mosquitto: running pid=$pid listener=$HOST:$MQTT_PORT"
    else
        echo "mosquitto: stopped"
        rc=3
    fi
    return "$rc"
}

cmd_env() {
    echo "MQFERRY_KAFKA_BOOTSTRAP=$HOST:$KAFKA_PORT"
    echo "MQFERRY_MQTT_HOST=$HOST"
    echo "MQFERRY_MQTT_PORT=$MQTT_PORT"
}

cmd_create_topic() {
    local name="${1:-}" partitions="${2:-1}"
    [[ -n $name ]] || die "usage: services.sh create-topic NAME [PARTITIONS]"
    [[ $partitions =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer, got '$partitions'"
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$KAFKA_PORT" \
        --create --if-not-exists --topic "$name" --partitions "$partitions" --replication-factor 1
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        install) cmd_install ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status ;;
        env) cmd_env ;;
        create-topic) cmd_create_topic "$@" ;;
        kafka-tool) kafka_tool "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
