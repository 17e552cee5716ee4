#!/usr/bin/env bash
# Development services for mqferry: a single-node Apache Kafka (KRaft) and a Mosquitto 2 broker,
# both bound to 127.0.0.1, with their data under .dev/.
#
# Beside the plaintext listeners, each broker has secured ones, with a throw-away CA and
# certificates made here (.dev/tls/): Kafka SASL_SSL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 users)
# and SSL with client certificates (mTLS); Mosquitto TLS with a password file, and TLS with client
# certificates. `env` prints their ports, files and passwords.
#
#   scripts/services.sh install                 apt: mosquitto, mosquitto-clients, kcat, openssl; mvn: Kafka jars
#   scripts/services.sh start [SERVICE...]      start kafka and mosquitto (reuses ours if already running),
#                                               wait until ready
#   scripts/services.sh stop [SERVICE...]       stop only the processes named in .dev/*.pid
#   scripts/services.sh reset-mosquitto         restart our Mosquitto with an empty store (persistent
#                                               sessions and their queued messages are dropped)
#   scripts/services.sh status                  one line per service; exit 0 only if both run
#   scripts/services.sh env                     MQFERRY_* variables for clients, to `eval`
#   scripts/services.sh create-topic NAME [PARTITIONS]   idempotent
#   scripts/services.sh kafka-tool CLASS ARGS...         run a Kafka tool class on the broker's classpath
#
# Environment: MQFERRY_KAFKA_PORT (9092), MQFERRY_KAFKA_CONTROLLER_PORT (9093), MQFERRY_MQTT_PORT (1883),
# MQFERRY_KAFKA_SASL_SSL_PORT (Kafka port + 2), MQFERRY_KAFKA_SSL_PORT (Kafka port + 3),
# MQFERRY_MQTT_TLS_PORT (MQTT port + 7000: 8883), MQFERRY_MQTT_MTLS_PORT (MQTT port + 7001: 8884),
# MQFERRY_DEV_DIR (<repo>/.dev), MQFERRY_SERVICES_TIMEOUT (seconds to wait for readiness, 90),
# MQFERRY_MQTT_MAX_INFLIGHT (Mosquitto's max_inflight_messages, 1000; applied when it starts).
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
KAFKA_SASL_SSL_PORT="${MQFERRY_KAFKA_SASL_SSL_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_SSL_PORT="${MQFERRY_KAFKA_SSL_PORT:-$((KAFKA_PORT + 3))}"
MQTT_TLS_PORT="${MQFERRY_MQTT_TLS_PORT:-$((MQTT_PORT + 7000))}"
MQTT_MTLS_PORT="${MQFERRY_MQTT_MTLS_PORT:-$((MQTT_PORT + 7001))}"
TLS_HOME="$DEV/tls"
# User names of the secured listeners; their passwords are made once, in $TLS_HOME/passwords.
MQTT_USER=mqferry
KAFKA_PLAIN_USER=mqferry_plain
KAFKA_SCRAM256_USER=mqferry_scram256
KAFKA_SCRAM512_USER=mqferry_scram512
TIMEOUT="${MQFERRY_SERVICES_TIMEOUT:-90}"
# Mosquitto's in-flight window per client (its own default is 20): see docs/kafka-sink.md.
MQTT_MAX_INFLIGHT="${MQFERRY_MQTT_MAX_INFLIGHT:-1000}"
KAFKA_PID_FILE="$DEV/kafka.pid"
MOSQ_PID_FILE="$DEV/mosquitto.pid"
# Short-lived JVMs for the command-line tools: start fast rather than run fast.
#: the broker's heap and collector (MQFERRY_KAFKA_JVM_OPTS replaces them)
KAFKA_JVM_OPTS="-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20"
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
    # openssl: start makes a throw-away CA and certificates for the secured listeners.
    for pkg in mosquitto mosquitto-clients kcat chromium openssl; do
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

# ---------------------------------------------------------------------------------------- tls

# A throw-away CA, a server certificate for localhost/127.0.0.1 (both brokers), a client
# certificate (its key also encrypted, for clients that take a key password), and the passwords
# of the secured listeners' users. Made once; remade when the server certificate expires within
# a day or a file is missing.
make_tls() {
    local dir="$TLS_HOME" f
    local files=(ca.pem ca.key server.pem server.key kafka-server.pem client.pem client.key
        client-encrypted.key passwords)
    for f in "${files[@]}"; do
        [[ -s "$dir/$f" ]] || { make_tls_files; return; }
    done
    openssl x509 -checkend 86400 -noout -in "$dir/server.pem" >/dev/null 2>&1 || make_tls_files
}

make_tls_files() {
    local dir="$TLS_HOME" tmp pw
    command -v openssl >/dev/null || die "openssl not found: it makes the test certificates"
    log "making a throw-away CA and certificates in ${dir#"$ROOT"/}"
    tmp="$dir.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    (
        set -e
        cd "$tmp"
        umask 077
        ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
        openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 825 \
            -subj "/CN=mqferry dev CA" -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign
        openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=localhost"
        printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" \
            "basicConstraints=CA:FALSE" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
            -extfile server.ext -out server.pem
        openssl req "${ec[@]}" -keyout client.key -out client.csr -subj "/CN=mqferry-client"
        printf '%s\n' "extendedKeyUsage=clientAuth" "basicConstraints=CA:FALSE" >client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
            -extfile client.ext -out client.pem
        # Kafka reads a PEM key store: the unencrypted PKCS#8 key, then the certificate chain.
        { openssl pkcs8 -topk8 -nocrypt -in server.key; cat server.pem ca.pem; } >kafka-server.pem
        pw="$(openssl rand -hex 12)"
        openssl pkcs8 -topk8 -v2 aes-256-cbc -in client.key -passout "pass:$pw" \
            -out client-encrypted.key
        {
            echo "MQFERRY_TLS_CLIENT_KEY_PASSWORD=$pw"
            echo "MQFERRY_MQTT_PASSWORD=$(openssl rand -hex 12)"
            echo "MQFERRY_KAFKA_PLAIN_PASSWORD=$(openssl rand -hex 12)"
            echo "MQFERRY_KAFKA_SCRAM_SHA_256_PASSWORD=$(openssl rand -hex 12)"
            echo "MQFERRY_KAFKA_SCRAM_SHA_512_PASSWORD=$(openssl rand -hex 12)"
        } >passwords
        rm -f ./*.csr ./*.ext ./*.srl
    ) >"$tmp.log" 2>&1 || { tail_log "$tmp.log"; die "making the test certificates failed"; }
    rm -rf "$dir" "$tmp.log"
    mv "$tmp" "$dir"
    # New passwords: the SCRAM users of an existing Kafka data dir must be set again.
    rm -f "$KAFKA_HOME/scram-users"
}

# tls_password NAME: the value of NAME in $TLS_HOME/passwords.
tls_password() {
    sed -n "s/^$1=//p" "$TLS_HOME/passwords"
}

mqtt_tls_ready() {
    port_open "$MQTT_TLS_PORT" && port_open "$MQTT_MTLS_PORT"
}

# ---------------------------------------------------------------------------------------- kafka

write_kafka_config() {
    mkdir -p "$KAFKA_HOME/data"
    (umask 077 && : >"$KAFKA_HOME/server.properties") # it holds the PLAIN user's password
    cat >"$KAFKA_HOME/server.properties" <<EOF
# Generated by scripts/services.sh on each start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT,SASL_SSL://$HOST:$KAFKA_SASL_SSL_PORT,MTLS://$HOST:$KAFKA_SSL_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,SASL_SSL://$HOST:$KAFKA_SASL_SSL_PORT,MTLS://$HOST:$KAFKA_SSL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL
# Secured listeners (clients only): TLS with the throw-away CA of $TLS_HOME.
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_HOME/kafka-server.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_HOME/ca.pem
listener.name.mtls.ssl.client.auth=required
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_PLAIN_USER="$(tls_password MQFERRY_KAFKA_PLAIN_PASSWORD)";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
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
    # The SCRAM users go in with the first metadata: KRaft keeps them in its log.
    kafka_tool kafka.tools.StorageTool format --ignore-formatted \
        -t "$cluster_id" -c "$KAFKA_HOME/server.properties" \
        --add-scram "SCRAM-SHA-256=[name=$KAFKA_SCRAM256_USER,password=$(tls_password MQFERRY_KAFKA_SCRAM_SHA_256_PASSWORD)]" \
        --add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM512_USER,password=$(tls_password MQFERRY_KAFKA_SCRAM_SHA_512_PASSWORD)]" \
        >>"$KAFKA_HOME/format.log" 2>&1 ||
        { tail_log "$KAFKA_HOME/format.log"; die "formatting Kafka storage failed"; }
    touch "$KAFKA_HOME/scram-users"
}

# A data dir formatted before the SCRAM users existed (or before new passwords were made): set
# them through the running broker.
ensure_scram_users() {
    [[ -f "$KAFKA_HOME/scram-users" ]] && return 0
    log "setting the Kafka SCRAM users"
    local mech user var
    for mech in 256 512; do
        user="KAFKA_SCRAM${mech}_USER"
        var="MQFERRY_KAFKA_SCRAM_SHA_${mech}_PASSWORD"
        kafka_tool kafka.admin.ConfigCommand --bootstrap-server "$HOST:$KAFKA_PORT" \
            --alter --entity-type users --entity-name "${!user}" \
            --add-config "SCRAM-SHA-$mech=[password=$(tls_password "$var")]" \
            >>"$KAFKA_HOME/format.log" 2>&1 ||
            { tail_log "$KAFKA_HOME/format.log"; die "setting the Kafka SCRAM users failed"; }
    done
    touch "$KAFKA_HOME/scram-users"
}

# True when the running broker was started with the secured listeners (its config is written
# on each start).
kafka_secured() {
    grep -q "^listeners=.*SASL_SSL://$HOST:$KAFKA_SASL_SSL_PORT" "$KAFKA_HOME/server.properties" \
        2>/dev/null
}

start_kafka() {
    local pid cp started
    if pid="$(live_pid "$KAFKA_PID_FILE")"; then
        log "Kafka already running (pid $pid), reusing it"
        kafka_secured || log "this Kafka has no SASL_SSL/SSL listeners (started by an older" \
            "script): \`services.sh stop kafka && services.sh start kafka\` adds them"
        wait_until Kafka "$KAFKA_PID_FILE" "$KAFKA_HOME/kafka.log" kafka_ready
        return 0
    fi
    local port
    for port in "$KAFKA_PORT" "$CONTROLLER_PORT" "$KAFKA_SASL_SSL_PORT" "$KAFKA_SSL_PORT"; do
        if port_open "$port"; then
            die "port $HOST:$port is taken by another process ($(port_owner "$port")), not one this" \
                "script started; stop it or choose MQFERRY_KAFKA_PORT / MQFERRY_KAFKA_CONTROLLER_PORT" \
                "/ MQFERRY_KAFKA_SASL_SSL_PORT / MQFERRY_KAFKA_SSL_PORT"
        fi
    done
    cp="$(kafka_classpath)"
    make_tls
    write_kafka_config
    format_kafka_storage
    [[ -f "$KAFKA_HOME/kafka.log" ]] && mv -f "$KAFKA_HOME/kafka.log" "$KAFKA_HOME/kafka.log.1"
    log "starting Kafka $(kafka_version) on $HOST:$KAFKA_PORT"
    started=$SECONDS
    # setsid: the broker must outlive the shell that started it (and its job control).
    # shellcheck disable=SC2086 # the options are words
    setsid java ${MQFERRY_KAFKA_JVM_OPTS:-$KAFKA_JVM_OPTS} -Djava.awt.headless=true \
        "-Xlog:gc,safepoint:file=$KAFKA_HOME/gc.log:time,uptime:filecount=2,filesize=10m" \
        "-Dlog4j2.configurationFile=$KAFKA_HOME/log4j2.properties" \
        -cp "$cp" kafka.Kafka "$KAFKA_HOME/server.properties" \
        >"$KAFKA_HOME/kafka.log" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$KAFKA_PID_FILE"
    wait_until Kafka "$KAFKA_PID_FILE" "$KAFKA_HOME/kafka.log" kafka_ready
    ensure_scram_users
    log "Kafka ready after $((SECONDS - started))s (pid $(<"$KAFKA_PID_FILE")); SASL_SSL on" \
        "$HOST:$KAFKA_SASL_SSL_PORT, mTLS on $HOST:$KAFKA_SSL_PORT"
}

# ---------------------------------------------------------------------------------------- mosquitto

write_mosquitto_config() {
    mkdir -p "$MOSQ_HOME"
    {
        echo "# Generated by scripts/services.sh on each start; edit the script, not this file."
        # Each listener has its own authentication.
        echo "per_listener_settings true"
        echo "listener $MQTT_PORT $HOST"
        echo "allow_anonymous true"
        # TLS, with a user name and password from the password file.
        echo "listener $MQTT_TLS_PORT $HOST"
        echo "allow_anonymous false"
        echo "password_file $MOSQ_HOME/passwd"
        echo "certfile $TLS_HOME/server.pem"
        echo "keyfile $TLS_HOME/server.key"
        # TLS with client certificates signed by the CA; the certificate's CN is the user name.
        echo "listener $MQTT_MTLS_PORT $HOST"
        echo "allow_anonymous false"
        echo "cafile $TLS_HOME/ca.pem"
        echo "certfile $TLS_HOME/server.pem"
        echo "keyfile $TLS_HOME/server.key"
        echo "require_certificate true"
        echo "use_identity_as_username true"
        echo "persistence true"
        echo "persistence_location $MOSQ_HOME/"
        # Saved when it stops (SIGTERM, as `stop` and `reset-mosquitto` send) and on SIGUSR1, not
        # on a timer: a save writes the whole store and fsyncs it with every client waiting, and
        # every 60 s that was a 0.2-1.8 s stall in whichever benchmark run it fell in (an 8 s run
        # meets one in about seven; see "Mosquitto's autosave" in benchmarks/RESULTS.md).
        echo "autosave_interval 0"
        # The bridge holds PUBACKs until Kafka has a message: the broker's inflight window and queue
        # are the back-pressure, so they are large. max_packet_size stays unset: no size limit.
        echo "max_inflight_messages $MQTT_MAX_INFLIGHT"
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
    rm -f "$MOSQ_HOME/passwd"
    (umask 077 && mosquitto_passwd -b -c "$MOSQ_HOME/passwd" "$MQTT_USER" \
        "$(tls_password MQFERRY_MQTT_PASSWORD)") ||
        die "mosquitto_passwd could not write $MOSQ_HOME/passwd"
}

# True when the running Mosquitto was started with the TLS listeners (see mosquitto_secured).
mosquitto_secured() {
    grep -q "^listener $MQTT_TLS_PORT " "$MOSQ_HOME/mosquitto.conf" 2>/dev/null
}

start_mosquitto() {
    local pid bin started
    if pid="$(live_pid "$MOSQ_PID_FILE")"; then
        log "Mosquitto already running (pid $pid), reusing it"
        mosquitto_secured || log "this Mosquitto has no TLS listeners (started by an older" \
            "script): \`services.sh stop mosquitto && services.sh start mosquitto\` adds them"
        wait_until Mosquitto "$MOSQ_PID_FILE" "$MOSQ_HOME/mosquitto.log" mqtt_ready
        return 0
    fi
    local port
    for port in "$MQTT_PORT" "$MQTT_TLS_PORT" "$MQTT_MTLS_PORT"; do
        if port_open "$port"; then
            die "port $HOST:$port is taken by another process ($(port_owner "$port")), not one this" \
                "script started (a system mosquitto service?); stop it or choose MQFERRY_MQTT_PORT" \
                "/ MQFERRY_MQTT_TLS_PORT / MQFERRY_MQTT_MTLS_PORT"
        fi
    done
    bin="$(command -v mosquitto || true)"
    [[ -n $bin ]] || bin=/usr/sbin/mosquitto
    [[ -x $bin ]] || die "mosquitto not found: run scripts/services.sh install"
    command -v mosquitto_pub >/dev/null || die "mosquitto_pub not found: run scripts/services.sh install"
    make_tls
    write_mosquitto_config
    [[ -f "$MOSQ_HOME/mosquitto.log" ]] && mv -f "$MOSQ_HOME/mosquitto.log" "$MOSQ_HOME/mosquitto.log.1"
    log "starting Mosquitto on $HOST:$MQTT_PORT"
    started=$SECONDS
    setsid "$bin" -c "$MOSQ_HOME/mosquitto.conf" >"$MOSQ_HOME/mosquitto.log" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$MOSQ_PID_FILE"
    wait_until Mosquitto "$MOSQ_PID_FILE" "$MOSQ_HOME/mosquitto.log" mqtt_ready
    wait_until "Mosquitto TLS listeners" "$MOSQ_PID_FILE" "$MOSQ_HOME/mosquitto.log" \
        mqtt_tls_ready
    log "Mosquitto ready after $((SECONDS - started))s (pid $(<"$MOSQ_PID_FILE")); TLS on" \
        "$HOST:$MQTT_TLS_PORT (password), $HOST:$MQTT_MTLS_PORT (client certificate)"
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

# Persistent sessions left by earlier runs (tests, benchmarks) keep their subscriptions and queue
# what matches them, up to max_queued_messages each: the store grows run after run, and Mosquitto
# writes all of it when it saves (at stop; before autosave_interval 0, every minute), pausing every
# client meanwhile.
cmd_reset_mosquitto() {
    stop_one Mosquitto "$MOSQ_PID_FILE"
    if [[ -f "$MOSQ_HOME/mosquitto.db" ]]; then
        log "removing Mosquitto's store ($(du -h "$MOSQ_HOME/mosquitto.db" | cut -f1))"
        rm -f "$MOSQ_HOME/mosquitto.db"
    fi
    start_mosquitto
}

cmd_status() {
    local rc=0 pid extra
    if pid="$(live_pid "$KAFKA_PID_FILE")"; then
        extra=""
        kafka_secured && extra=" sasl_ssl=$HOST:$KAFKA_SASL_SSL_PORT ssl=$HOST:$KAFKA_SSL_PORT"
        echo "kafka: running pid=$pid bootstrap=$HOST:$KAFKA_PORT version=$(kafka_version)$extra"
    else
        echo "kafka: stopped"
        rc=3
    fi
    if pid="$(live_pid "$MOSQ_PID_FILE")"; then
        extra=""
        mosquitto_secured && extra=" tls=$HOST:$MQTT_TLS_PORT mtls=$HOST:$MQTT_MTLS_PORT"
        echo "mosquitto: running pid=$pid listener=$HOST:$MQTT_PORT$extra"
    else
        echo "mosquitto: stopped"
        rc=3
    fi
    return "$rc"
}

# The secured listeners' variables are printed only for brokers started with them.
cmd_env() {
    echo "MQFERRY_KAFKA_BOOTSTRAP=$HOST:$KAFKA_PORT"
    echo "MQFERRY_MQTT_HOST=$HOST"
    echo "MQFERRY_MQTT_PORT=$MQTT_PORT"
    local tls=0
    if [[ -s "$TLS_HOME/passwords" ]] && mosquitto_secured; then
        tls=1
        echo "MQFERRY_MQTT_TLS_PORT=$MQTT_TLS_PORT"
        echo "MQFERRY_MQTT_MTLS_PORT=$MQTT_MTLS_PORT"
        echo "MQFERRY_MQTT_USERNAME=$MQTT_USER"
        grep '^MQFERRY_MQTT_PASSWORD=' "$TLS_HOME/passwords"
    fi
    if [[ -s "$TLS_HOME/passwords" ]] && kafka_secured; then
        tls=1
        echo "MQFERRY_KAFKA_SASL_SSL_BOOTSTRAP=$HOST:$KAFKA_SASL_SSL_PORT"
        echo "MQFERRY_KAFKA_SSL_BOOTSTRAP=$HOST:$KAFKA_SSL_PORT"
        echo "MQFERRY_KAFKA_PLAIN_USERNAME=$KAFKA_PLAIN_USER"
        echo "MQFERRY_KAFKA_SCRAM_SHA_256_USERNAME=$KAFKA_SCRAM256_USER"
        echo "MQFERRY_KAFKA_SCRAM_SHA_512_USERNAME=$KAFKA_SCRAM512_USER"
        grep '^MQFERRY_KAFKA_' "$TLS_HOME/passwords"
    fi
    if ((tls)); then
        echo "MQFERRY_TLS_CA=$TLS_HOME/ca.pem"
        echo "MQFERRY_TLS_CA_KEY=$TLS_HOME/ca.key"
        echo "MQFERRY_TLS_CLIENT_CERT=$TLS_HOME/client.pem"
        echo "MQFERRY_TLS_CLIENT_KEY=$TLS_HOME/client.key"
        echo "MQFERRY_TLS_CLIENT_KEY_ENCRYPTED=$TLS_HOME/client-encrypted.key"
        grep '^MQFERRY_TLS_' "$TLS_HOME/passwords"
    fi
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
        reset-mosquitto) cmd_reset_mosquitto ;;
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
