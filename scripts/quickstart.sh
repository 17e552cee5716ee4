#!/usr/bin/env bash
# The quick start: prepares the checkout, starts Kafka and Mosquitto on 127.0.0.1, creates the
# example's topics and runs mqferry with examples/quickstart.yaml in the foreground (Ctrl-C stops
# it). The services keep running afterwards; `scripts/services.sh stop` stops them.
#
# Ports: MQFERRY_KAFKA_PORT (9092), MQFERRY_KAFKA_CONTROLLER_PORT (9093), MQFERRY_MQTT_PORT (1883)
# for the services, MQFERRY_API_PORT (18083) for mqferry's REST API and console; the example
# config reads the same variables, so setting them is all it takes to run on other ports.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SERVICES=(bash "$ROOT/scripts/services.sh")

bash "$ROOT/scripts/bootstrap.sh"
"${SERVICES[@]}" start
"${SERVICES[@]}" create-topic testtopic-in
"${SERVICES[@]}" create-topic testtopic-out

while IFS='=' read -r name value; do
    export "$name=$value"
done < <("${SERVICES[@]}" env)

# examples/quickstart.yaml reads these; the services' own choice is what they listen on.
export MQFERRY_KAFKA_PORT="${MQFERRY_KAFKA_BOOTSTRAP##*:}"
export MQFERRY_API_PORT="${MQFERRY_API_PORT:-18083}"

printf 'quickstart: Kafka at %s, MQTT at %s:%s, console at http://127.0.0.1:%s/dashboard/\n' \
    "$MQFERRY_KAFKA_BOOTSTRAP" "$MQFERRY_MQTT_HOST" "$MQFERRY_MQTT_PORT" "$MQFERRY_API_PORT" >&2
exec "$ROOT/.venv/bin/mqferry" run -c examples/quickstart.yaml "$@"
