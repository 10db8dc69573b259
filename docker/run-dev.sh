#!/usr/bin/env bash
# `make run`: migrate and serve Herald. When no Twilio credentials are configured, start the
# Twilio simulator (cmd/twilio-sim) beside it with matching credentials, so the whole flow —
# inbound messages, sends, signed status callbacks — works with one command and no internet.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export HERALD_ADDR="${HERALD_ADDR:-127.0.0.1:8080}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://$HERALD_ADDR}"
export HERALD_LOG_FORMAT="${HERALD_LOG_FORMAT:-console}"

bin/herald migrate

# An API key for this machine, kept across runs in .herald-dev-key (git ignores it).
if [[ -z ${HERALD_API_KEYS:-} ]]; then
  if [[ ! -s .herald-dev-key ]]; then
    (umask 077; printf 'dev-%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" > .herald-dev-key)
  fi
  export HERALD_API_KEYS="$(cat .herald-dev-key)"
  dev_key="$HERALD_API_KEYS"
fi

sim_pid=""
cleanup() {
  if [[ -n $sim_pid ]]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

if [[ -z ${TWILIO_ACCOUNT_SID:-} && -z ${TWILIO_AUTH_TOKEN:-} ]]; then
  export SIM_ADDR="${SIM_ADDR:-127.0.0.1:8089}"
  export TWILIO_ACCOUNT_SID="ACsimulator00000000000000000000000"
  export TWILIO_AUTH_TOKEN="simtoken"
  export TWILIO_FROM="${TWILIO_FROM:-whatsapp:+14155238886}"
  export TWILIO_API_URL="http://$SIM_ADDR"
  SIM_LOG_FORMAT=console bin/twilio-sim serve &
  sim_pid=$!
  for _ in $(seq 50); do
    curl -fsS "http://$SIM_ADDR/sim/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo
  echo "No Twilio credentials: the Twilio simulator runs at $TWILIO_API_URL (TWILIO_API_URL)."
  echo "  Send Herald an inbound WhatsApp message:  bin/twilio-sim inbound --from +51987654321 --body 'SUBSCRIBE deals'"
fi

echo
echo "Herald: http://$HERALD_ADDR/   (/healthz, /readyz, /metrics; webhooks at $PUBLIC_BASE_URL/webhooks/twilio/…)"
echo "API:    http://$HERALD_ADDR/v1/   (OpenAPI at /v1/openapi.json)"
if [[ -n ${dev_key:-} ]]; then
  echo "        API key (admin, from .herald-dev-key): $dev_key"
  echo "        curl -H 'Authorization: Bearer $dev_key' http://$HERALD_ADDR/v1/users"
fi
echo "Ctrl-C stops it."
echo
bin/herald serve &
herald_pid=$!
wait "$herald_pid"
