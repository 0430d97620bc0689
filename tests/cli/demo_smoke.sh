#!/usr/bin/env bash
# The demo's smoke mode: CA, hub, the simulated town (saferlink-sim swarm), a panic
# acknowledged by CCTV and heard by a named and a simulated Chatham shop.
set -euo pipefail
build=$(dirname "$(dirname "$1")")
dir=$(mktemp -d /tmp/saferlink-demo-smoke.XXXXXX)
trap 'rm -rf "$dir"' EXIT
DEMO_DIR="$dir" bash "$(dirname "$0")/../../scripts/demo.sh" "$build" --smoke
echo "1 passed, 0 failed"
