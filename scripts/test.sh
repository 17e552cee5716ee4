#!/usr/bin/env bash
# The test command: prepares the checkout, starts the development services (Kafka and Mosquitto)
# and runs tox against them. Arguments go to tox (e.g. `scripts/test.sh -e py`).
# Services this script started are stopped when it exits; services that were already running are
# left running. Exit code: tox's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SERVICES=(bash "$ROOT/scripts/services.sh")

bash "$ROOT/scripts/bootstrap.sh"

# Remember which services were running before, so that only the ones started here are stopped.
to_stop=()
status="$("${SERVICES[@]}" status || true)"
for service in kafka mosquitto; do
    grep -q "^$service: running" <<<"$status" || to_stop+=("$service")
done
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ ${#to_stop[@]} -gt 0 ]]; then
        "${SERVICES[@]}" stop "${to_stop[@]}" || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${SERVICES[@]}" start

# MQFERRY_KAFKA_BOOTSTRAP, MQFERRY_MQTT_HOST, MQFERRY_MQTT_PORT: tox passes them to the tests, whose
# fixtures then reuse these services instead of starting their own.
while IFS='=' read -r name value; do
    export "$name=$value"
done < <("${SERVICES[@]}" env)

rc=0
if [[ $# -eq 0 ]]; then
    # Every environment runs on the compiled data path (scripts/compile.py) when bootstrap could
    # compile it; the unit tests also run on the sources first, which run where it could not.
    if [[ -n "$(find core plugins -name '*.cpython-*.so' -not -path '*/build/*' -print -quit)" ]]; then
        "$ROOT/.venv/bin/python" scripts/compile.py --clean
        echo "test: the unit tests on the sources"
        "$ROOT/.venv/bin/tox" -e py || rc=$?
        "$ROOT/.venv/bin/python" scripts/compile.py >/dev/null || rc=$?
        echo "test: every environment on the compiled data path"
    fi
fi
"$ROOT/.venv/bin/tox" "$@" || rc=$?
exit "$rc"
