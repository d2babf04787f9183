#!/usr/bin/env bash
# Load test: hookguard side by side with the ceiling server (examples/ceiling.rs: the same
# axum + rustls stack returning a constant allowed review), in the same run, over TLS
# keep-alive on 127.0.0.1, with a real captured review (fixture 2, a CREATE of an Argo CD
# PreSync Job) alternating /validate and /mutate. Load generator: wrk (Debian package).
#
#   scripts/load.sh            # or: make load
#   DURATION=20 CONNS=64 scripts/load.sh
#
# Prints requests/s, p50/p99 latency and peak RSS (VmHWM) for both servers, at full speed
# and at 70 % of the ceiling's throughput.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
HG_PORT=${HG_PORT:-18443}
HG_ADMIN_PORT=${HG_ADMIN_PORT:-18080}
CEIL_PORT=${CEIL_PORT:-19443}

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  else
    echo "load.sh: wrk is needed (apt-get install wrk)" >&2; exit 1
  fi
fi

cargo build --release --quiet --bin hookguard --example ceiling
BIN=target/release/hookguard
CEIL=target/release/examples/ceiling
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

"$BIN" certs --out "$TMP" --host 127.0.0.1 >/dev/null
export WRK_BODY=tests/fixtures/admission/kube-apiserver-1.20.2/2.json

# hookguard as in production: info-level JSON logs (one line per decision), metrics on.
"$BIN" --log-format json --log-level "${HG_LOG_LEVEL:-info}" serve --addr 127.0.0.1:$HG_PORT \
  --admin-addr 127.0.0.1:$HG_ADMIN_PORT --tls-cert "$TMP/tls.crt" --tls-key "$TMP/tls.key" \
  --shutdown-delay 0s >"$TMP/hookguard.log" 2>&1 &
HG_PID=$!; PIDS+=("$HG_PID")
"$CEIL" 127.0.0.1:$CEIL_PORT "$TMP/tls.crt" "$TMP/tls.key" &
CEIL_PID=$!; PIDS+=("$CEIL_PID")

for i in $(seq 100); do
  curl -sf "http://127.0.0.1:$HG_ADMIN_PORT/readyz" >/dev/null && break; sleep 0.1
done
# Correctness before speed: both answer the review over TLS.
curl -sf --cacert "$TMP/ca.crt" -H 'Content-Type: application/json' --data-binary @"$WRK_BODY" \
  "https://127.0.0.1:$HG_PORT/mutate" | grep -q '"allowed":true'
curl -sf --cacert "$TMP/ca.crt" -H 'Content-Type: application/json' --data-binary @"$WRK_BODY" \
  "https://127.0.0.1:$CEIL_PORT/mutate" | grep -q '"allowed":true'

run() { # port conns delay_ms duration -> RESULT line
  WRK_DELAY_MS=$3 wrk -t"$THREADS" -c"$2" -d"$4"s -s scripts/load.lua "https://127.0.0.1:$1" | grep '^RESULT'
}
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$2"; }
rss() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

run $CEIL_PORT "$CONNS" 0 "$WARMUP" >/dev/null
CEIL_MAX=$(run $CEIL_PORT "$CONNS" 0 "$DURATION")
run $HG_PORT "$CONNS" 0 "$WARMUP" >/dev/null
HG_MAX=$(run $HG_PORT "$CONNS" 0 "$DURATION")

CEIL_RPS=$(field rps "$CEIL_MAX")
TARGET=$(( CEIL_RPS * 70 / 100 ))
# Each connection sends one request every DELAY ms: connections = target * delay / 1000.
DELAY=10
RCONNS=$(( (TARGET * DELAY + 999) / 1000 ))
CEIL_70=$(run $CEIL_PORT "$RCONNS" $DELAY "$DURATION")
HG_70=$(run $HG_PORT "$RCONNS" $DELAY "$DURATION")

HG_RSS=$(rss $HG_PID); CEIL_RSS=$(rss $CEIL_PID)
HG_RPS=$(field rps "$HG_MAX")
ms() { awk -v us="$1" 'BEGIN{printf "%.2f", us/1000}'; }

echo
echo "wrk ${THREADS} threads, ${DURATION}s per run, TLS keep-alive, fixture 2 alternating /validate and /mutate; $(nproc) cores"
printf "%-34s %12s %12s\n" "" "ceiling" "hookguard"
printf "%-34s %12s %12s\n" "full speed ($CONNS conns): req/s" "$CEIL_RPS" "$HG_RPS"
printf "%-34s %12s %12s\n" "full speed: p50 ms" "$(ms "$(field p50_us "$CEIL_MAX")")" "$(ms "$(field p50_us "$HG_MAX")")"
printf "%-34s %12s %12s\n" "full speed: p99 ms" "$(ms "$(field p99_us "$CEIL_MAX")")" "$(ms "$(field p99_us "$HG_MAX")")"
printf "%-34s %12s %12s\n" "at ~$TARGET req/s ($RCONNS conns): req/s" "$(field rps "$CEIL_70")" "$(field rps "$HG_70")"
printf "%-34s %12s %12s\n" "at ~70 %: p50 ms" "$(ms "$(field p50_us "$CEIL_70")")" "$(ms "$(field p50_us "$HG_70")")"
printf "%-34s %12s %12s\n" "at ~70 %: p99 ms" "$(ms "$(field p99_us "$CEIL_70")")" "$(ms "$(field p99_us "$HG_70")")"
printf "%-34s %12s %12s\n" "errors (all runs)" \
  "$(( $(field errors "$CEIL_MAX") + $(field errors "$CEIL_70") ))" "$(( $(field errors "$HG_MAX") + $(field errors "$HG_70") ))"
printf "%-34s %12s %12s\n" "peak RSS MiB" "$CEIL_RSS" "$HG_RSS"
echo "hookguard / ceiling throughput: $(awk -v a="$HG_RPS" -v b="$CEIL_RPS" 'BEGIN{printf "%.1f %%", 100*a/b}')"
echo "decisions logged: $(grep -c '"admission decision"' "$TMP/hookguard.log")"
