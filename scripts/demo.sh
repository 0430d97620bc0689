#!/usr/bin/env bash
# The SaferLink demo: a local CA, a hub on 127.0.0.1, and a simulated town of handsets
# (saferlink-sim swarm with firmware-sim/scenarios/demo-town.toml).
#   scripts/demo.sh BUILD_DIR            interactive: runs until Ctrl-C (what ./run demo does)
#   scripts/demo.sh BUILD_DIR --smoke    presses panic, acknowledges it, checks, and exits
# Environment: DEMO_DIR (default .demo), DEMO_PORT (default 7443; the smoke run uses a free one),
# CONSOLE_PORT (default 8443; the smoke run uses a free one).
set -euo pipefail
BUILD=$(cd "$1" && pwd); shift
MODE=${1:-interactive}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=${DEMO_DIR:-$ROOT/.demo}
CA="$BUILD/certs/saferlink-ca"
HUB="$BUILD/server/saferlink-hub"
CLI="$BUILD/client/saferlink"
SIM="$BUILD/firmware-sim/saferlink-sim"
TOWN="$ROOT/firmware-sim/scenarios/demo-town.toml"
PORT=${DEMO_PORT:-7443}
CONSOLE_PORT=${CONSOLE_PORT:-8443}
[ "$MODE" = "--smoke" ] && PORT=0 && CONSOLE_PORT=0

mkdir -p "$DEMO/logs"
if [ ! -f "$DEMO/ca/ca.crt" ]; then
  echo "making a local CA and certificates in $DEMO/ca"
  "$CA" init --dir "$DEMO/ca" --name "Safer Medway Partnership (demo)" >/dev/null
  "$CA" issue --dir "$DEMO/ca" --role hub --id hub --host 127.0.0.1 >/dev/null
  "$CA" issue --dir "$DEMO/ca" --role cctv --town all --member "Medway CCTV Control Room" --id cctv-01 >/dev/null
  "$CA" issue --dir "$DEMO/ca" --role police --town chatham --member "Kent Police" --id police-chatham-01 >/dev/null
  "$CA" issue --dir "$DEMO/ca" --role police --town strood --member "Kent Police" --id police-strood-01 >/dev/null
  "$CA" issue --dir "$DEMO/ca" --role coordinator --town all --member "Safer Medway Partnership" --id coord-01 >/dev/null
  "$CA" issue --dir "$DEMO/ca" --role coordinator --town all --member "Safer Medway Partnership" --id coord-02 >/dev/null
  "$CA" issue --dir "$DEMO/ca" --role shop --town chatham --member "Boots, Pentagon Centre" --id shop-chatham-01 >/dev/null
  "$CA" issue --dir "$DEMO/ca" --role shop --town chatham --member "WHSmith, High Street" --id shop-chatham-02 >/dev/null
  "$CA" issue --dir "$DEMO/ca" --role shop --town chatham --member "Superdrug, High Street" --id shop-chatham-03 >/dev/null
  "$CA" issue --dir "$DEMO/ca" --role shop --town strood --member "Co-op, Strood" --id shop-strood-01 >/dev/null
fi
# The people at the console (not on air as handsets): a CCTV operator in the control room.
issue_once() {  # issue_once ID issue-arguments...
  local id=$1; shift
  [ -f "$DEMO/ca/issued/$id.crt" ] || "$CA" issue --dir "$DEMO/ca" --id "$id" "$@" >/dev/null
}
issue_once cctv-op-01 --role cctv --town all --member "Medway CCTV Control Room"
# Their browser certificates: PKCS#12 bundles to import (password in browser/PASSWORD).
mkdir -p "$DEMO/browser"
[ -f "$DEMO/browser/PASSWORD" ] || echo "saferlink-demo" >"$DEMO/browser/PASSWORD"
for id in cctv-op-01 police-chatham-01 coord-01 coord-02; do
  [ -f "$DEMO/browser/$id.p12" ] ||
    "$CA" export --dir "$DEMO/ca" --id "$id" --out "$DEMO/browser/$id.p12" \
      --password-file "$DEMO/browser/PASSWORD" >/dev/null
done

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

"$HUB" --certs "$DEMO/ca" --db "$DEMO/saferlink.db" --listen "127.0.0.1:$PORT" \
  --console "127.0.0.1:$CONSOLE_PORT" --seed-demo >"$DEMO/logs/hub.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q '^listening ' "$DEMO/logs/hub.log" 2>/dev/null && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "the hub did not start:" >&2; cat "$DEMO/logs/hub.log" >&2; exit 1
  fi
  sleep 0.1
done
PORT=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$DEMO/logs/hub.log" | head -1)
for _ in $(seq 50); do grep -q '^console ' "$DEMO/logs/hub.log" && break; sleep 0.1; done
CONSOLE_PORT=$(sed -n 's/^console \([0-9]*\)$/\1/p' "$DEMO/logs/hub.log" | head -1)
[ -n "$PORT" ] || { echo "the hub did not start:" >&2; cat "$DEMO/logs/hub.log" >&2; exit 1; }
ADDR="127.0.0.1:$PORT"

# The town on air: one saferlink-sim swarm process holding the named handsets (CCTV, police,
# shops) and simulated shops in every town; each handset logs what it receives to logs/ID.log.
NAMED="cctv-01 police-chatham-01 police-strood-01 shop-chatham-02 shop-chatham-03 shop-strood-01"
rm -f "$DEMO"/logs/sim-*.log
for id in $NAMED; do : >"$DEMO/logs/$id.log"; done
"$SIM" swarm --hub "$ADDR" --certs "$DEMO/ca" --scenario "$TOWN" --log-dir "$DEMO/logs" \
  >"$DEMO/logs/swarm.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  on_air=0
  for id in $NAMED sim-chatham-shop-0001; do
    grep -qs "^on air" "$DEMO/logs/$id.log" && on_air=$((on_air + 1))
  done
  [ "$on_air" -eq 7 ] && break
  if ! kill -0 "${pids[1]}" 2>/dev/null; then
    echo "the simulated town did not start:" >&2; cat "$DEMO/logs/swarm.log" >&2; exit 1
  fi
  sleep 0.1
done

if [ "$MODE" = "--smoke" ]; then
  "$CLI" --hub "$ADDR" --certs "$DEMO/ca" --id shop-chatham-01 panic --note "smoke test" \
    --status test --wait 20 >"$DEMO/logs/panic.out" 2>&1 &
  panic=$!
  for _ in $(seq 100); do [ -s "$DEMO/logs/panic.out" ] && break; sleep 0.1; done
  ALERT=$(head -1 "$DEMO/logs/panic.out")
  for _ in $(seq 100); do grep -q "$ALERT" "$DEMO/logs/cctv-01.log" && break; sleep 0.1; done
  "$CLI" --hub "$ADDR" --certs "$DEMO/ca" --id cctv-01 ack "$ALERT"
  wait "$panic"
  cat "$DEMO/logs/panic.out"
  grep -q "CCTV: acknowledged by cctv-01" "$DEMO/logs/panic.out"
  grep -q "$ALERT" "$DEMO/logs/shop-chatham-02.log"
  grep -q "$ALERT" "$DEMO/logs/sim-chatham-shop-0001.log"  # a simulated Chatham shop heard it
  if grep -q "$ALERT" "$DEMO/logs/shop-strood-01.log"; then
    echo "a Strood shop heard a Chatham alert" >&2; exit 1
  fi
  # The seeded intelligence store answers a coordinator.
  "$CLI" --hub "$ADDR" --certs "$DEMO/ca" --id coord-01 coord prolific --limit 3 --json \
    >"$DEMO/logs/prolific.out"
  [ "$(wc -l <"$DEMO/logs/prolific.out")" -eq 3 ] || { echo "no prolific offenders" >&2; exit 1; }
  "$CLI" --hub "$ADDR" --certs "$DEMO/ca" --id coord-01 coord audit verify --json | grep -q '"ok":true'
  # The console answers a coordinator's certificate (and only over mutual TLS).
  python3 - "$DEMO/ca" "$CONSOLE_PORT" <<'PY'
import json, ssl, sys, http.client
ca, port = sys.argv[1], int(sys.argv[2])
context = ssl.create_default_context(cafile=f"{ca}/ca.crt")
context.load_cert_chain(f"{ca}/issued/coord-01.crt", f"{ca}/issued/coord-01.key")
connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
connection.request("GET", "/api/me")
me = json.loads(connection.getresponse().read())
assert me["id"] == "coord-01" and me["role"] == "coordinator", me
connection.request("POST", "/api/coord/notice.list", body="{}",
                   headers={"Content-Type": "application/json"})
assert connection.getresponse().status == 200
PY
  echo "demo smoke run passed"
  exit 0
fi

cli="./build/client/saferlink --hub $ADDR --certs ${DEMO#$ROOT/}/ca"
cat <<MSG

SaferLink demo is running: hub on $ADDR, console on https://127.0.0.1:$CONSOLE_PORT/,
database ${DEMO#$ROOT/}/saferlink.db
On air (one saferlink-sim swarm, firmware-sim/scenarios/demo-town.toml): cctv-01,
police-chatham-01, police-strood-01, shop-chatham-02, shop-chatham-03, shop-strood-01 and four
simulated shops per town (sim-TOWN-shop-000N); each logs what it receives to
${DEMO#$ROOT/}/logs/ID.log.

In another terminal, press panic in a Chatham shop (it prints the alert id first):
  $cli --id shop-chatham-01 panic --note "man with a knife by the tills"

Watch it arrive (CCTV sees every town; Strood hears nothing unless it escalates):
  tail -f ${DEMO#$ROOT/}/logs/cctv-01.log ${DEMO#$ROOT/}/logs/shop-chatham-02.log ${DEMO#$ROOT/}/logs/shop-strood-01.log

Answer it as the CCTV operator, then as police (the panic terminal shows each):
  $cli --id cctv-01 ack ALERT_ID
  $cli --id police-chatham-01 ack ALERT_ID --status en_route

Or be the Chatham shop's handset yourself (p: panic, a long press; s: sighting; l: link down;
o: power cycle; q: quit):
  ./build/firmware-sim/saferlink-sim handset --hub $ADDR --certs ${DEMO#$ROOT/}/ca --id shop-chatham-01 --flash ${DEMO#$ROOT/}/shop-chatham-01.flash

Leave one unanswered for 15 s to see it escalate to every town and the coordinator.
Or listen yourself: $cli --id coord-01 listen --json

The intelligence store holds a generated partnership (incidents, profiles, notices):
  $cli --id coord-01 coord prolific
  $cli --id coord-01 coord candidates
  $cli --id coord-01 coord notice list --state active
  $cli --id coord-01 coord profiles show 1
  $cli --id coord-02 coord notice approve NOTICE_ID --reason "board agreed"   (two-person rule)
  $cli --id coord-01 coord audit verify

A member's view: the exclusion gallery of its town, and a sighting (flagged if the person named
has an active notice covering the town):
  $cli --id shop-chatham-02 gallery
  $cli --id shop-chatham-02 sighting --text "seen by the fountain, heading to the station" --profile 1

The console (alert board, handsets, and for coordinators the review queue, profiles, notices,
candidates, audit log and retention) is at https://127.0.0.1:$CONSOLE_PORT/ in a browser that
holds a person's certificate. Import one of ${DEMO#$ROOT/}/browser/*.p12 (password in
${DEMO#$ROOT/}/browser/PASSWORD: cctv-op-01 is a CCTV operator, police-chatham-01 an officer,
coord-01 and coord-02 coordinators) and trust ${DEMO#$ROOT/}/ca/ca.crt as an authority; in
Chromium: Settings > Privacy and security > Security > Manage certificates. Without a
certificate the hub refuses the connection.

Hub log follows; Ctrl-C stops everything.
MSG
tail -n +1 -f "$DEMO/logs/hub.log" &
pids+=($!)
wait "${pids[0]}"
