#!/usr/bin/env bash
# saferlink-sim on the command line: bad input exits 2 with one line; a small swarm against a
# real hub reports JSON with sent, lost and duplicates; the interactive handset takes keys from
# a pipe, raises a panic and keeps its flash.
# Usage: sim_cli.sh SAFERLINK_SIM SAFERLINK_CA SAFERLINK_HUB SCENARIO_DIR
set -uo pipefail
SIM=$1 CA=$2 HUB=$3 SCENARIOS=$4
dir=$(mktemp -d /tmp/saferlink-sim-cli.XXXXXX)
hub_pid=""
cleanup() { [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }

# expect_error CODE PATTERN -- command...: exit status CODE, one line on stderr matching PATTERN
expect_error() {
  local code=$1 pattern=$2; shift 3
  "$@" >"$dir/out" 2>"$dir/err"
  local got=$?
  if [ "$got" -ne "$code" ]; then bad "$* exited $got, expected $code"; return; fi
  if [ "$(wc -l <"$dir/err")" -ne 1 ]; then bad "$*: stderr is not one line:"; cat "$dir/err" >&2; return; fi
  if ! grep -q -- "$pattern" "$dir/err"; then bad "$*: stderr lacks '$pattern':"; cat "$dir/err" >&2; return; fi
  ok
}

expect_error 2 "saferlink-sim: " -- "$SIM"
expect_error 2 "frobnicate" -- "$SIM" swarm --certs "$dir/ca" --scenario x.toml --frobnicate
expect_error 2 "scenario" -- "$SIM" swarm --certs "$dir/ca"
expect_error 2 "cannot read scenario $dir/none.toml" -- "$SIM" swarm --certs "$dir/ca" --scenario "$dir/none.toml"
printf 'name = "x"\n[[group]]\ntown = "chatham"\nrole = "shop"\ncount = 2\nspeed = 3\n' >"$dir/bad.toml"
expect_error 2 "bad.toml: group\[1\].speed: unknown key" -- "$SIM" swarm --certs "$dir/ca" --scenario "$dir/bad.toml"
expect_error 2 "duration" -- "$SIM" swarm --certs "$dir/ca" --scenario "$SCENARIOS/quiet-tuesday-chatham.toml" --duration -5
if "$SIM" --help >/dev/null && "$SIM" swarm --help | grep -q -- "--scenario"; then ok; else bad "--help"; fi

# A CA and a hub on a free port.
"$CA" init --dir "$dir/ca" >/dev/null
"$CA" issue --dir "$dir/ca" --role hub --id hub --host 127.0.0.1 >/dev/null
"$CA" issue --dir "$dir/ca" --role shop --town chatham --member "Boots" --id shop-chatham-01 >/dev/null
expect_error 2 "cannot load CA $dir/nothing/ca.crt" -- "$SIM" swarm --certs "$dir/nothing" --scenario "$SCENARIOS/quiet-tuesday-chatham.toml"
expect_error 2 "cannot" -- "$SIM" handset --certs "$dir/ca" --id nobody --seconds 1
"$HUB" --certs "$dir/ca" --db "$dir/hub.db" --listen 127.0.0.1:0 >"$dir/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 100); do grep -q '^listening ' "$dir/hub.log" && break; sleep 0.1; done
port=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$dir/hub.log" | head -1)
[ -n "$port" ] || { echo "hub did not start" >&2; cat "$dir/hub.log" >&2; exit 1; }

# A small swarm: one named CCTV handset (issued into the CA directory), generated shops.
cat >"$dir/small.toml" <<TOML
name = "cli"
duration_s = 4
ramp_s = 1
drain_s = 10
[handset]
panic_status = "test"
[[group]]
town = "chatham"
role = "shop"
count = 10
panics_per_hour = 1800
[[group]]
town = "all"
role = "cctv"
ids = ["cctv-sim-01"]
ack_after_s = 0.2
TOML
if "$SIM" swarm --hub "127.0.0.1:$port" --certs "$dir/ca" --scenario "$dir/small.toml" --json \
    --log-dir "$dir/logs" >"$dir/report.json" 2>"$dir/swarm.err"; then
  if python3 - "$dir/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["sent"] > 0, r
assert r["lost"] == 0 and r["duplicates"] == 0, r
assert r["accepted"] == r["sent"], r
assert r["handsets"] == 11, r
assert r["latency"]["press_to_accepted"]["count"] == r["sent"], r
PY
  then ok; else bad "swarm report"; cat "$dir/report.json" >&2; fi
  [ -f "$dir/ca/issued/cctv-sim-01.crt" ] && ok || bad "the named handset's certificate was not issued"
  grep -q "PANIC sim-chatham-shop-" "$dir/logs/cctv-sim-01.log" && ok || bad "cctv log lacks the panics"
else
  bad "swarm exited non-zero"; cat "$dir/swarm.err" >&2
fi

# The interactive handset: a long press from a pipe, then quit after a few seconds.
(sleep 1; printf 'p') | "$SIM" handset --hub "127.0.0.1:$port" --certs "$dir/ca" \
  --id shop-chatham-01 --flash "$dir/shop.flash" --hold 0.5 --seconds 4 --json >"$dir/handset.out" 2>&1
grep -q '"what":"accepted shop-chatham-01:' "$dir/handset.out" && ok || { bad "handset: no acceptance"; cat "$dir/handset.out" >&2; }
grep -q '"indication":"accepted"\|"indication":"delivered"' "$dir/handset.out" && ok || bad "handset: indicator"
grep -q '"next_device_seq"' "$dir/shop.flash" && ok || bad "handset: no flash file"
# A damaged flash is refused with one line.
echo "garbage" >"$dir/broken.flash"
expect_error 2 "broken.flash is damaged" -- "$SIM" handset --hub "127.0.0.1:$port" --certs "$dir/ca" --id shop-chatham-01 --flash "$dir/broken.flash" --seconds 1

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
