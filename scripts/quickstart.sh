#!/usr/bin/env bash
# The quick start: prepares the checkout, starts Kafka and Mosquitto on 127.0.0.1, creates the
# example's topics and runs mqferry with examples/quickstart.yaml in the foreground (Ctrl-C stops
# it). The services keep running afterwards; `scripts/services.sh stop` stops them.
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

printf 'quickstart: Kafka at %s, MQTT at %s:%s\n' \
    "$MQFERRY_KAFKA_BOOTSTRAP" "$MQFERRY_MQTT_HOST" "$MQFERRY_MQTT_PORT" >&2
exec "$ROOT/.venv/bin/mqferry" run -c examples/quickstart.yaml "$@"
