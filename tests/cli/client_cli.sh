#!/usr/bin/env bash
# saferlink (handheld CLI) and saferlink-hub command-line behaviour: exit codes and one-line
# errors for bad input. Args: saferlink-ca saferlink-hub saferlink
set -uo pipefail
CA=$1 HUB=$2 CLI=$3
dir=$(mktemp -d /tmp/saferlink-cli-test.XXXXXX)
hubpid=""
cleanup() { [ -n "$hubpid" ] && kill "$hubpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
passed=0
fail() { echo "FAIL: $*" >&2; echo "$passed passed, 1 failed"; exit 1; }
ok() { passed=$((passed + 1)); }

# expect_error NAME CMD...: non-zero exit and exactly one line on stderr.
expect_error() {
  local name=$1; shift
  "$@" >"$dir/out" 2>"$dir/err" </dev/null
  local rc=$?
  [ $rc -ne 0 ] || fail "$name: exit 0"
  [ "$(wc -l <"$dir/err")" -eq 1 ] || { cat "$dir/err" >&2; fail "$name: stderr is not one line"; }
  ok
}

"$CA" init --dir "$dir/ca" >/dev/null || fail "init"
"$CA" issue --dir "$dir/ca" --role hub --id hub --host 127.0.0.1 >/dev/null || fail "hub cert"
"$CA" issue --dir "$dir/ca" --role shop --town chatham --member "Boots" --id shop-1 >/dev/null || fail "shop cert"
"$CA" issue --dir "$dir/ca" --role cctv --town all --member "CCTV" --id cctv-1 >/dev/null || fail "cctv cert"
"$CA" issue --dir "$dir/ca" --role coordinator --town all --member "SMP" --id coord-1 >/dev/null || fail "coord cert"
"$CA" init --dir "$dir/other" >/dev/null || fail "other init"
"$CA" issue --dir "$dir/other" --role shop --town chatham --member "Rogue" --id shop-1 >/dev/null || fail "rogue cert"

# A port nobody listens on: bind-and-release is racy, so use the hub's own port-0 report later;
# here port 1 on loopback is refused at once.
expect_error "unreachable hub" "$CLI" --hub 127.0.0.1:1 --certs "$dir/ca" --id cctv-1 ack x:1
expect_error "missing certificate" "$CLI" --hub 127.0.0.1:1 --certs "$dir/ca" --id nobody listen
expect_error "bad --hub" "$CLI" --hub nonsense --certs "$dir/ca" --id cctv-1 ack x:1
expect_error "bad ack status" "$CLI" --hub 127.0.0.1:1 --certs "$dir/ca" --id cctv-1 ack x:1 --status maybe
expect_error "no subcommand" "$CLI" --id cctv-1
expect_error "hub without certificates" "$HUB" --certs "$dir/nothing" --db "$dir/x.db" --listen 127.0.0.1:0
expect_error "hub with a bad address" "$HUB" --certs "$dir/ca" --db "$dir/x.db" --listen "not-an-address"

"$HUB" --certs "$dir/ca" --db "$dir/hub.db" --listen 127.0.0.1:0 >"$dir/hub.out" 2>"$dir/hub.log" &
hubpid=$!
for _ in $(seq 100); do grep -q '^listening ' "$dir/hub.out" && break; sleep 0.1; done
port=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$dir/hub.out")
[ -n "$port" ] || fail "hub did not start: $(cat "$dir/hub.log")"
addr=127.0.0.1:$port

expect_error "unknown alert id" "$CLI" --hub "$addr" --certs "$dir/ca" --id cctv-1 ack nobody:1
expect_error "certificate from another CA" "$CLI" --hub "$addr" --certs "$dir/other" --id shop-1 listen --seconds 2
expect_error "cancel of an unknown alert" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 cancel shop-1:99
expect_error "shop may not send en_route" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 ack shop-1:1 --status en_route
# Nobody answers within --wait: exit non-zero, the alert id still printed first.
"$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 panic --status test --wait 1 >"$dir/out" 2>"$dir/err"
[ $? -ne 0 ] || fail "panic --wait ran out but exited 0"
grep -qx 'shop-1:[0-9]*' <(head -1 "$dir/out") || fail "panic did not print the alert id first"
ok
# report: a form from a JSON file, confirmed once committed; a retry gets the same confirmation.
cat >"$dir/form.json" <<JSON
{"form_id": "cli-test-0001", "occurred_at": "2026-01-05T10:00:00Z", "town": "chatham",
 "premises": "Boots, Pentagon Centre", "category": "theft_from_shop",
 "description": "Took two bottles of perfume", "goods": "perfume", "value_pence": 7800}
JSON
"$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 report "$dir/form.json" >"$dir/out" 2>"$dir/err" \
  || fail "report: $(cat "$dir/err")"
[ "$(head -1 "$dir/out")" = "cli-test-0001" ] || fail "report did not print the form id first"
first=$(sed -n 2p "$dir/out")
case "$first" in confirmed\ F-cli-test-0001@*) ok ;; *) fail "report: unexpected '$first'" ;; esac
"$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 report "$dir/form.json" >"$dir/out2" 2>&1 \
  || fail "report retry"
grep -q "${first#confirmed } (already filed earlier)" "$dir/out2" || fail "retry confirmation differs"
ok
sed 's/theft_from_shop/shoplifting/' "$dir/form.json" >"$dir/bad.json"
expect_error "form with an unknown category" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 report "$dir/bad.json"
sed 's/"town": "chatham"/"town": "strood"/; s/cli-test-0001/cli-test-0002/' "$dir/form.json" >"$dir/strood.json"
expect_error "form for another town" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 report "$dir/strood.json"
expect_error "a shop asking for coordinator data" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 coord notice list
expect_error "purge without a mode" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 coord purge

# upload: an image in chunks; prints the SHA-256 it is stored under, once committed. Bytes after
# the PNG's end (here a place) are stripped, so it is stored as the bare PNG.
echo "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==" \
  | base64 -d >"$dir/bare.png"
{ cat "$dir/bare.png"; printf 'GPS 51.3890N 0.5050E'; } >"$dir/still.png"
bare_sha=$(sha256sum "$dir/bare.png" | cut -d' ' -f1)
"$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 upload "$dir/still.png" >"$dir/out" 2>"$dir/err" \
  || fail "upload: $(cat "$dir/err")"
[ "$(cat "$dir/out")" = "$bare_sha" ] || fail "upload printed '$(cat "$dir/out")', not $bare_sha"
ok
"$CLI" --hub "$addr" --certs "$dir/ca" --id cctv-1 upload --json "$dir/still.png" >"$dir/out" 2>"$dir/err" \
  || fail "upload --json: $(cat "$dir/err")"
grep -q "\"stored_sha256\":\"$bare_sha\"" "$dir/out" || fail "upload --json: $(cat "$dir/out")"
grep -q '"mime":"image/png"' "$dir/out" || fail "upload --json has no mime: $(cat "$dir/out")"
ok
printf 'not a picture at all, just notes\n' >"$dir/notes.jpg"
expect_error "upload of a text file named .jpg" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 upload "$dir/notes.jpg"
grep -q "not a JPEG, PNG or WebP image" "$dir/err" || fail "text upload: no reason: $(cat "$dir/err")"
expect_error "upload of a missing file" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 upload "$dir/none.png"
# report --still: the still is uploaded first and cited in the form by its stored SHA-256.
sed 's/cli-test-0001/cli-test-0003/' "$dir/form.json" >"$dir/form3.json"
"$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 report "$dir/form3.json" --still "$dir/still.png" \
  >"$dir/out" 2>"$dir/err" || fail "report --still: $(cat "$dir/err")"
grep -qx "still $dir/still.png stored as $bare_sha (image/png)" "$dir/out" || fail "report --still: $(cat "$dir/out")"
case "$(tail -1 "$dir/out")" in confirmed\ F-cli-test-0003@*) ok ;; *) fail "report --still: $(cat "$dir/out")" ;; esac
"$CLI" --hub "$addr" --certs "$dir/ca" --id cctv-1 coord incidents show cli-test-0003 >"$dir/out" 2>"$dir/err" \
  || fail "incidents show: $(cat "$dir/err")"
grep -q "$bare_sha" "$dir/out" || fail "the form does not cite the still: $(cat "$dir/out")"
ok
sed 's/cli-test-0001/cli-test-0004/' "$dir/form.json" >"$dir/form4.json"
expect_error "report with a still that is not an image" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 report "$dir/form4.json" --still "$dir/notes.jpg"
# sighting: prints the sighting id, then the hub's answer; CCTV listening in Chatham hears it.
"$CLI" --hub "$addr" --certs "$dir/ca" --id cctv-1 listen --count 1 --seconds 15 >"$dir/listen.out" 2>&1 &
listenpid=$!
for _ in $(seq 100); do grep -q '^listening as' "$dir/listen.out" && break; sleep 0.1; done
"$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 sighting --text "grey hoodie" --heading "to the bus station" \
  --photo "$dir/still.png" --seq 5 >"$dir/out" 2>"$dir/err" || fail "sighting: $(cat "$dir/err")"
[ "$(head -1 "$dir/out")" = "shop-1:5" ] || fail "sighting did not print its id first: $(cat "$dir/out")"
[ "$(tail -1 "$dir/out")" = "accepted, relayed to 1" ] || fail "sighting: unexpected '$(tail -1 "$dir/out")'"
wait "$listenpid" || fail "listen for the sighting: $(cat "$dir/listen.out")"
grep -q "^SIGHTING shop-1:5 from Boots (shop-1, Shop, chatham).*: grey hoodie$" "$dir/listen.out" \
  || fail "listen did not show the sighting: $(cat "$dir/listen.out")"
ok
expect_error "sighting from a coordinator" "$CLI" --hub "$addr" --certs "$dir/ca" --id coord-1 sighting --text "seen"
expect_error "sighting from all-town CCTV without a town" "$CLI" --hub "$addr" --certs "$dir/ca" --id cctv-1 sighting --text "seen"
expect_error "sighting naming an unknown profile" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 sighting --text "seen" --profile 999
grep -q "profile_id: no profile 999" "$dir/err" || fail "sighting unknown profile: $(cat "$dir/err")"

# audit verify: exit 0 on an intact chain; after a row is altered behind the hub's back, a
# non-zero exit naming the first broken row.
"$CLI" --hub "$addr" --certs "$dir/ca" --id coord-1 coord audit verify >"$dir/out" 2>"$dir/err" \
  || fail "audit verify on an intact chain: $(cat "$dir/err")"
grep -q "audit chain intact" "$dir/out" || fail "audit verify: $(cat "$dir/out")"
ok
sqlite3 "$dir/hub.db" "UPDATE audit_log SET detail = 'edited' WHERE seq = 1" || fail "tamper"
expect_error "audit verify on an altered chain" "$CLI" --hub "$addr" --certs "$dir/ca" --id coord-1 coord audit verify
grep -q "row 1" "$dir/err" || fail "audit verify did not name row 1: $(cat "$dir/err")"
ok

# gallery: a member lists the exclusion gallery of its town (empty here: no active notice).
"$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 gallery --json >"$dir/out" 2>"$dir/err" \
  || fail "gallery: $(cat "$dir/err")"
[ ! -s "$dir/out" ] || fail "gallery should be empty: $(cat "$dir/out")"
ok

# gallery --dir: a folder kept in sync (empty gallery: version 0, no entries), a folder whose
# gallery.json is not ours refused, --watch without --dir refused.
"$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 gallery --dir "$dir/g" >"$dir/out" 2>"$dir/err" \
  || fail "gallery --dir: $(cat "$dir/err")"
grep -q "^gallery version 0, 0 entries in $dir/g" "$dir/out" || fail "gallery --dir: $(cat "$dir/out")"
[ -f "$dir/g/gallery.json" ] || fail "gallery --dir wrote no gallery.json"
ok
mkdir -p "$dir/bad-g" && echo '{"version": "x"}' >"$dir/bad-g/gallery.json"
expect_error "gallery --dir with a foreign gallery.json" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 gallery --dir "$dir/bad-g"
expect_error "gallery --watch without --dir" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 gallery --watch

# listen --state: a state file that does not hold two sequence numbers is refused.
echo "garbage" >"$dir/state"
expect_error "listen with a bad state file" "$CLI" --hub "$addr" --certs "$dir/ca" --id shop-1 listen --state "$dir/state" --seconds 1

kill -0 "$hubpid" || fail "hub died"
ok
echo "$passed passed, 0 failed"
