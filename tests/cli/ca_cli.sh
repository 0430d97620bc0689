#!/usr/bin/env bash
# Command-line behaviour of saferlink-ca: exit codes, one-line errors, init/issue/revoke/list.
# Run by CTest as: bash tests/cli/ca_cli.sh <saferlink-ca> <saferlink-hub> <saferlink>
set -euo pipefail

CA_BIN=${1:?usage: ca_cli.sh <saferlink-ca> [saferlink-hub] [saferlink]}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
DIR=$TMP/ca
passed=0

fail() {
  echo "FAIL: $*" >&2
  if [[ -s $TMP/out ]]; then echo "--- stdout:" >&2; cat "$TMP/out" >&2; fi
  if [[ -s $TMP/err ]]; then echo "--- stderr:" >&2; cat "$TMP/err" >&2; fi
  echo "$passed passed, 1 failed" >&2
  exit 1
}

# ok NAME ARGS...: the command exits 0.
ok() {
  local name=$1
  shift
  "$CA_BIN" "$@" >"$TMP/out" 2>"$TMP/err" || fail "$name: exit $? (expected 0)"
  passed=$((passed + 1))
}

# refused NAME ARGS...: the command exits 1 with exactly one stderr line "saferlink-ca: ...".
refused() {
  local name=$1
  shift
  local rc=0
  "$CA_BIN" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [[ $rc -eq 1 ]] || fail "$name: exit $rc (expected 1)"
  local lines
  lines=$(wc -l <"$TMP/err")
  [[ $lines -eq 1 ]] || fail "$name: $lines lines on stderr (expected 1)"
  grep -q '^saferlink-ca: ' "$TMP/err" || fail "$name: stderr does not start with 'saferlink-ca: '"
  passed=$((passed + 1))
}

# contains NAME PATTERN FILE: FILE has a line matching the extended regex PATTERN.
contains() {
  grep -Eq -- "$2" "$3" || fail "$1: no line matching '$2'"
  passed=$((passed + 1))
}

ok "help" --help
contains "help names the subcommands" 'issue' "$TMP/out"
ok "issue help" issue --help
contains "issue help names --role" '--role' "$TMP/out"

ok "init" init --dir "$DIR" --towns chatham,strood,rochester
[[ -f $DIR/ca.crt && -f $DIR/ca.key && -f $DIR/crl.pem && -f $DIR/index.json ]] ||
  fail "init: CA files missing"
[[ $(stat -c %a "$DIR/ca.key") == 600 ]] || fail "init: ca.key is not mode 600"
passed=$((passed + 1))
refused "second init" init --dir "$DIR"

ok "issue shop" issue --dir "$DIR" --role shop --town chatham --member "Pentagon Centre Boots" \
  --id shop-chatham-01
[[ -f $DIR/issued/shop-chatham-01.crt && -f $DIR/issued/shop-chatham-01.key ]] ||
  fail "issue shop: certificate or key missing"
passed=$((passed + 1))
ok "issue police for all towns" issue --dir "$DIR" --role police --town all --member "Kent Police" \
  --id pc-1234 --days 30
ok "issue hub" issue --dir "$DIR" --role hub --id hub --host 127.0.0.1 --host hub.example.org

ok "list" list --dir "$DIR"
contains "list shows the shop as valid" '^shop-chatham-01 .*chatham.* valid' "$TMP/out"
contains "list shows the hub" '^hub ' "$TMP/out"
ok "list --json" list --dir "$DIR" --json
[[ $(wc -l <"$TMP/out") -eq 3 ]] || fail "list --json: expected 3 lines"
passed=$((passed + 1))
contains "list --json gives one object per line" \
  '^\{"id":"pc-1234".*"state":"valid".*\}$' "$TMP/out"

refused "bad role" issue --dir "$DIR" --role boss --town chatham --member M --id x1
refused "unknown town" issue --dir "$DIR" --role shop --town paris --member M --id x2
refused "shop for all towns" issue --dir "$DIR" --role shop --town all --member M --id x3
refused "duplicate id" issue --dir "$DIR" --role shop --town strood --member M --id shop-chatham-01
refused "invalid id" issue --dir "$DIR" --role shop --town strood --member M --id 'bad/id'
refused "hub without host" issue --dir "$DIR" --role hub --id hub2
refused "missing CA" issue --dir "$TMP/nowhere" --role shop --town chatham --member M --id x4
contains "missing CA says what to do" 'run saferlink-ca init first' "$TMP/err"
refused "revoke unknown id" revoke --dir "$DIR" --id ghost
refused "list without CA" list --dir "$TMP/nowhere"
[[ ! -e $DIR/issued/x1.crt && ! -e $DIR/issued/x2.crt && ! -e $DIR/issued/x3.crt ]] ||
  fail "a refused issue left a certificate behind"
passed=$((passed + 1))

rc=0
"$CA_BIN" issue --dir "$DIR" >"$TMP/out" 2>"$TMP/err" || rc=$?
[[ $rc -ne 0 && $rc -ne 1 ]] || fail "missing --role: exit $rc (expected a parse error)"
passed=$((passed + 1))

ok "revoke" revoke --dir "$DIR" --id shop-chatham-01
ok "list after revoke" list --dir "$DIR"
contains "list shows the shop as revoked" '^shop-chatham-01 .* revoked' "$TMP/out"
contains "list still shows the police officer as valid" '^pc-1234 .* valid' "$TMP/out"
refused "second revoke" revoke --dir "$DIR" --id shop-chatham-01
ok "crl" crl --dir "$DIR"

if command -v openssl >/dev/null; then
  openssl verify -CAfile "$DIR/ca.crt" -CRLfile "$DIR/crl.pem" -crl_check \
    "$DIR/issued/pc-1234.crt" >/dev/null 2>&1 || fail "openssl: police certificate does not verify"
  passed=$((passed + 1))
  if openssl verify -CAfile "$DIR/ca.crt" -CRLfile "$DIR/crl.pem" -crl_check \
    "$DIR/issued/shop-chatham-01.crt" >/dev/null 2>&1; then
    fail "openssl: revoked certificate still verifies"
  fi
  passed=$((passed + 1))
fi

# export: a PKCS#12 bundle for a browser, 0600, readable with its password; refusals.
ok "export" export --dir "$DIR" --id pc-1234 --out "$TMP/pc.p12" --password "correct horse"
[[ $(stat -c %a "$TMP/pc.p12") == 600 ]] || fail "export: bundle is not mode 0600"
passed=$((passed + 1))
echo "correct horse" >"$TMP/pw"
ok "export with a password file" export --dir "$DIR" --id pc-1234 --out "$TMP/pc2.p12" --password-file "$TMP/pw"
refused "export over an existing file" export --dir "$DIR" --id pc-1234 --out "$TMP/pc.p12" --password "correct horse"
refused "export with a short password" export --dir "$DIR" --id pc-1234 --out "$TMP/x.p12" --password short
refused "export without a password" export --dir "$DIR" --id pc-1234 --out "$TMP/y.p12"
refused "export of an unknown id" export --dir "$DIR" --id nobody --out "$TMP/z.p12" --password "correct horse"
refused "export of a revoked id" export --dir "$DIR" --id shop-chatham-01 --out "$TMP/r.p12" --password "correct horse"
if command -v openssl >/dev/null; then
  openssl pkcs12 -in "$TMP/pc.p12" -passin "pass:correct horse" -nokeys -clcerts 2>/dev/null \
    | grep -q "CN = pc-1234" || fail "openssl cannot read the bundle's certificate"
  passed=$((passed + 1))
  if openssl pkcs12 -in "$TMP/pc.p12" -passin pass:wrong -nokeys >/dev/null 2>&1; then
    fail "the bundle opens with a wrong password"
  fi
  passed=$((passed + 1))
fi

echo "$passed passed, 0 failed"
