#!/usr/bin/env bash
# Instructions per request, hookguard vs. the ceiling server: a figure that does not depend on
# how busy the machine is (unlike requests/s on a shared 2-core box). Each server runs under
# valgrind's callgrind; wrk sends the same traffic as scripts/load.sh (fixture 2, alternating
# /validate and /mutate, TLS keep-alive); counters are zeroed after a warm-up and dumped after
# the measured run, so start-up and the TLS handshakes are not counted. User-space
# instructions only (the kernel's share, e.g. the socket writes, is not seen by valgrind).
#
#   scripts/instructions.sh            # or: make load-instructions
#   SECS=30 scripts/instructions.sh
#   FLOOR=1 scripts/instructions.sh    # also the ceiling with --check-json (the "floor")
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-15}
BODY=${BODY:-tests/fixtures/admission/kube-apiserver-1.20.2/2.json}
for tool in wrk valgrind callgrind_control; do
  command -v "$tool" >/dev/null || { echo "instructions.sh: $tool is needed (apt-get install wrk valgrind)" >&2; exit 1; }
done

cargo build --release --quiet --bin hookguard --example ceiling
R=${CARGO_TARGET_DIR:-target}/release
TMP=$(mktemp -d)
VPID=
cleanup() { [ -n "$VPID" ] && kill "$VPID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
"$R"/hookguard certs --out "$TMP" --host 127.0.0.1 >/dev/null

# shellcheck source=scripts/ports.sh
. scripts/ports.sh

measure() { # name port -- command...
  local name=$1 port=$2; shift 3
  valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$name.%p" "$@" >"$TMP/$name.log" 2>&1 &
  VPID=$!
  for _ in $(seq 300); do
    curl -sk -o /dev/null "https://127.0.0.1:$port/" 2>/dev/null && break; sleep 0.2
  done
  WRK_BODY=$BODY wrk -t1 -c4 -d5s -s scripts/load.lua "https://127.0.0.1:$port" >/dev/null
  callgrind_control -z "$VPID" >/dev/null 2>&1
  local result
  result=$(WRK_BODY=$BODY wrk -t1 -c4 -d"${SECS}"s -s scripts/load.lua "https://127.0.0.1:$port" | grep '^RESULT')
  callgrind_control -d "$VPID" >/dev/null 2>&1
  sleep 1
  kill "$VPID"; wait "$VPID" 2>/dev/null || true; VPID=
  local dump ir requests
  dump=$(ls "$TMP"/cg."$name".*.1)
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  requests=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$result")
  [ "$requests" -gt 0 ] || { echo "instructions.sh: no requests answered by $name" >&2; exit 1; }
  printf "%-10s %8d requests %12d instructions per request\n" "$name" "$requests" $((ir / requests))
  cp "$dump" "target/callgrind.$name.out"
}

P=$(free_ports 1) || { echo "instructions.sh: no free port on 127.0.0.1" >&2; exit 1; }
measure ceiling "$P" -- "$R"/examples/ceiling "127.0.0.1:$P" "$TMP/tls.crt" "$TMP/tls.key"
if [ "${FLOOR:-0}" = 1 ]; then
  P=$(free_ports 1) || { echo "instructions.sh: no free port on 127.0.0.1" >&2; exit 1; }
  measure floor "$P" -- "$R"/examples/ceiling "127.0.0.1:$P" "$TMP/tls.crt" "$TMP/tls.key" --check-json
fi
PORTS=$(free_ports 2) || { echo "instructions.sh: no free ports on 127.0.0.1" >&2; exit 1; }
read -r P A <<<"$PORTS"
measure hookguard "$P" -- "$R"/hookguard --log-format json --log-level info serve \
  --addr "127.0.0.1:$P" --admin-addr "127.0.0.1:$A" --tls-cert "$TMP/tls.crt" \
  --tls-key "$TMP/tls.key" --shutdown-delay 0s
echo "profiles: target/callgrind.{ceiling,floor,hookguard}.out (callgrind_annotate --inclusive=yes FILE)"
