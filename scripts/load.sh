#!/usr/bin/env bash
# Load test: hookguard side by side with the ceiling server (examples/ceiling.rs: the same
# axum + rustls stack returning a constant allowed review), in the same run, over TLS
# keep-alive on 127.0.0.1, with a real captured review (fixture 2, a CREATE of an Argo CD
# PreSync Job) alternating /validate and /mutate. Load generators (Debian packages): wrk
# for full speed (closed loop: each connection sends its next request when the answer
# arrives), h2load for a fixed rate (`--rps` paces every connection; wrk has no rate mode).
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
# Connections for the fixed-rate run (each paced at rate / PACED_CONNS requests per second).
PACED_CONNS=${PACED_CONNS:-32}

need() { # command debian-package
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq "$2" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }
  else
    echo "load.sh: $1 is needed (apt-get install $2)" >&2; exit 1
  fi
}
need wrk wrk
need h2load nghttp2-client

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

run() { # port conns duration -> RESULT line
  wrk -t"$THREADS" -c"$2" -d"$3"s -s scripts/load.lua "https://127.0.0.1:$1" | grep '^RESULT'
}
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$2"; }
rss() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

run $CEIL_PORT "$CONNS" "$WARMUP" >/dev/null
CEIL_MAX=$(run $CEIL_PORT "$CONNS" "$DURATION")
run $HG_PORT "$CONNS" "$WARMUP" >/dev/null
HG_MAX=$(run $HG_PORT "$CONNS" "$DURATION")

CEIL_RPS=$(field rps "$CEIL_MAX")
TARGET=$(( CEIL_RPS * 70 / 100 ))
# h2load at a fixed rate: PACED_CONNS connections, each sending rate/PACED_CONNS requests per
# second; its log has one line per answered request of the measured phase (start time,
# status, microseconds). A late answer delays its connection's next request (no
# coordinated-omission correction), so the figures are of the answers, not of a schedule.
paced() { # port rate -> RESULT line like run's
  local log="$TMP/h2load.$1.log" out="$TMP/h2load.$1.out"
  rm -f "$log"
  h2load --h1 -t 1 -c "$PACED_CONNS" --rps $(( ($2 + PACED_CONNS - 1) / PACED_CONNS )) \
    -D "$DURATION" --warm-up-time "$WARMUP" -d "$WRK_BODY" -H 'content-type: application/json' \
    --log-file "$log" "https://127.0.0.1:$1/validate?timeout=10s" \
    "https://127.0.0.1:$1/mutate?timeout=10s" >"$out" 2>&1
  local failed
  failed=$(sed -n 's/^requests: .* \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 \2 \3/p' "$out" \
    | awk '{print $1 + $2 + $3}')
  sort -n -k3 "$log" | awk -v secs="$DURATION" -v failed="${failed:-0}" '
    { d[NR] = $3; if ($2 != 200) bad++ }
    END { printf "RESULT rps=%d p50_us=%d p99_us=%d errors=%d\n", NR / secs, d[int(NR * 0.5) + 1], d[int(NR * 0.99) + 1], bad + failed }'
}
CEIL_70=$(paced $CEIL_PORT "$TARGET")
HG_70=$(paced $HG_PORT "$TARGET")

HG_RSS=$(rss $HG_PID); CEIL_RSS=$(rss $CEIL_PID)
HG_RPS=$(field rps "$HG_MAX")
ms() { awk -v us="$1" 'BEGIN{printf "%.2f", us/1000}'; }

echo
echo "${DURATION}s per run, TLS keep-alive, fixture 2 alternating /validate and /mutate; $(nproc) cores"
echo "full speed: wrk, ${THREADS} threads; fixed rate: h2load, $PACED_CONNS paced connections"
printf "%-34s %12s %12s\n" "" "ceiling" "hookguard"
printf "%-34s %12s %12s\n" "full speed ($CONNS conns): req/s" "$CEIL_RPS" "$HG_RPS"
printf "%-34s %12s %12s\n" "full speed: p50 ms" "$(ms "$(field p50_us "$CEIL_MAX")")" "$(ms "$(field p50_us "$HG_MAX")")"
printf "%-34s %12s %12s\n" "full speed: p99 ms" "$(ms "$(field p99_us "$CEIL_MAX")")" "$(ms "$(field p99_us "$HG_MAX")")"
printf "%-34s %12s %12s\n" "at $TARGET req/s (70 %): req/s" "$(field rps "$CEIL_70")" "$(field rps "$HG_70")"
printf "%-34s %12s %12s\n" "at ~70 %: p50 ms" "$(ms "$(field p50_us "$CEIL_70")")" "$(ms "$(field p50_us "$HG_70")")"
printf "%-34s %12s %12s\n" "at ~70 %: p99 ms" "$(ms "$(field p99_us "$CEIL_70")")" "$(ms "$(field p99_us "$HG_70")")"
printf "%-34s %12s %12s\n" "errors (all runs)" \
  "$(( $(field errors "$CEIL_MAX") + $(field errors "$CEIL_70") ))" "$(( $(field errors "$HG_MAX") + $(field errors "$HG_70") ))"
printf "%-34s %12s %12s\n" "peak RSS MiB" "$CEIL_RSS" "$HG_RSS"
echo "hookguard / ceiling throughput: $(awk -v a="$HG_RPS" -v b="$CEIL_RPS" 'BEGIN{printf "%.1f %%", 100*a/b}')"
echo "decisions logged: $(grep -c '"admission decision"' "$TMP/hookguard.log")"
