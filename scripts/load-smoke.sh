#!/usr/bin/env bash
# Checks that `make load` (scripts/load.sh) works end to end, not how fast anything is: a short
# run of all three servers (hookguard, the ceiling, the floor), two rounds of each kind, with
# plain release builds without LTO in their own build directory (quick to build; the figures
# of such a run mean nothing). Fails, saying which, unless the table has every row for every
# server with plausible values, no request failed, hookguard stayed under the 64 MiB target and
# logged its decisions. CI runs it (`make load-smoke`).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=$(mktemp)
ERR=$(mktemp)
trap 'rm -f "$OUT" "$ERR"' EXIT

fail() {
  echo "load-smoke: $1" >&2
  echo "--- load.sh's output:" >&2
  cat "$OUT" "$ERR" >&2
  exit 1
}

# shellcheck source=scripts/ports.sh
. scripts/ports.sh
# Ports free now, so the check can run beside `make load` and its fixed ports.
PORTS=$(free_ports 4) || fail "no free ports on 127.0.0.1"
read -r HG_PORT HG_ADMIN_PORT CEIL_PORT FLOOR_PORT <<<"$PORTS"
export HG_PORT HG_ADMIN_PORT CEIL_PORT FLOOR_PORT

# The build settings only make the run quick to build; load.sh reads the rest.
if ! CARGO_TARGET_DIR=${LOAD_SMOKE_TARGET:-target/load-smoke} \
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  PGO=0 FLOOR=1 DURATION=1 WARMUP=1 ROUNDS=2 scripts/load.sh >"$OUT" 2>"$ERR"; then
  fail "scripts/load.sh failed"
fi

# The values of a table row (everything after its label), e.g. `values "peak RSS MiB"`.
values() {
  local line
  line=$(grep -F -- "$1" "$OUT" | head -1) || fail "no row \"$1\""
  echo "${line#*"$1"}"
}
# Each of a row's three values (ceiling, hookguard, floor) must satisfy an awk condition on v.
check_row() { # label condition what
  local vals
  vals=$(values "$1")
  [ "$(wc -w <<<"$vals")" = 3 ] || fail "row \"$1\" has not three values: $vals"
  awk '{ for (i = 1; i <= NF; i++) if ($i !~ /^[0-9.]+$/) exit 1 }' <<<"$vals" \
    || fail "row \"$1\" has a value that is not a number: $vals"
  for v in $vals; do
    awk -v v="$v" "BEGIN { exit !($2) }" || fail "row \"$1\": $v is not $3 ($vals)"
  done
}

grep -qE '^ +ceiling +hookguard +floor$' "$OUT" || fail "no header naming the three servers"
grep -q 'plain release builds (PGO=0)' "$OUT" || fail "the table does not say which builds ran"
check_row "full speed (32 conns): req/s" "v > 0" "a positive rate"
check_row "full speed: p50 ms" "v > 0" "a positive latency"
check_row "full speed: p99 ms" "v > 0" "a positive latency"
check_row "full speed: server CPU us/req" "v > 0" "a positive CPU time"
check_row "full speed: CPU stolen by others %" "v >= 0 && v <= 100" "a percentage"
check_row "(70 %): req/s" "v > 0" "a positive rate"
check_row "at ~70 %: p50 ms" "v > 0" "a positive latency"
check_row "at ~70 %: p99 ms" "v > 0" "a positive latency"
check_row "at ~70 %: fewest req/s in a round" "v > 0" "a positive rate"
check_row "at ~70 %: machine CPU busy %" "v > 0 && v <= 100" "a percentage"
check_row "at ~70 %: h2load's CPU us/req" "v > 0" "a positive CPU time"
check_row "errors (all runs)" "v == 0" "zero"
check_row "peak RSS MiB" "v > 0 && v < 64" "under the 64 MiB target"

# The fixed rate is 70 % of the ceiling's median full-speed rate over the rounds (of two, the
# lower), as the rounds reported it.
asked=$(sed -n 's/^at \([0-9]*\) req\/s (70 %).*/\1/p' "$OUT")
median=$(sed -n "s/.*full-speed rate over the rounds (\([0-9]*\) req\/s)$/\1/p" "$OUT")
lower=$(sed -n 's/^round [12]: ceiling \([0-9]*\) req\/s.*/\1/p' "$ERR" | sort -n | head -1)
[ -n "$asked" ] && [ -n "$median" ] || fail "no fixed rate or median rate in the table"
[ "$median" = "$lower" ] \
  || fail "the median rate $median is not the ceiling's lower round (${lower:-none})"
[ "$asked" = $(( median * 70 / 100 )) ] || fail "asked for $asked req/s, not 70 % of $median"

# Both rounds of each kind are reported, with all three servers.
[ "$(grep -c '^round [12]: ceiling .*hookguard .*floor ' "$ERR")" = 2 ] \
  || fail "not two full-speed rounds with all three servers"
[ "$(grep -c "^paced round [12] at $asked req/s: ceiling .*hookguard .*floor " "$ERR")" = 2 ] \
  || fail "not two paced rounds with all three servers"

grep -qE '^hookguard / ceiling throughput: [0-9.]+ %$' "$OUT" || fail "no throughput ratio"
grep -qE '^floor / ceiling throughput: [0-9.]+ %$' "$OUT" || fail "no floor ratio"
# One decision line per request: at least as many as one full-speed run answered (1 s).
logged=$(sed -n 's/^decisions logged: \([0-9]*\)$/\1/p' "$OUT")
rates=$(values "full speed (32 conns): req/s" | xargs)
served=$(awk '{print $2}' <<<"$rates")
[ -n "$logged" ] && [ "$logged" -ge "$served" ] \
  || fail "hookguard logged ${logged:-no} decisions for at least $served requests"
echo "load-smoke: ok ($rates req/s at full speed; ${logged} decisions logged)"
