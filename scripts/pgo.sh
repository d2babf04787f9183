#!/usr/bin/env bash
# Profile-guided release build of hookguard and of the ceiling server (examples/ceiling.rs),
# both from one profile, so that `scripts/load.sh` compares two servers built the same way.
#
#   scripts/pgo.sh        # or: make release-pgo
#
# 1. Builds both with `-Cprofile-generate` (their own target directory: the flags differ).
# 2. Trains them: every captured review in tests/fixtures/admission (all ten, not only the one
#    the load test sends) to both webhooks under wrk for TRAIN_SECS each, plus the admin plane;
#    then stops both with SIGINT, on which they write their profiles.
# 3. Merges the profiles with the llvm-profdata of rustc's own LLVM version (Debian's
#    `llvm-N` package, installed when missing and run as root).
# 4. Builds both again with `-Cprofile-use`. The profile's file name carries a hash of its
#    contents, so a new profile rebuilds everything and an unchanged one rebuilds nothing.
#
# Prints the two binaries' paths (`hookguard=...`, `ceiling=...`) as its last two lines.
# Build scripts and proc macros are not instrumented (`--target` keeps RUSTFLAGS off them).
set -euo pipefail
cd "$(dirname "$0")/.."

TRAIN_SECS=${TRAIN_SECS:-1}
HG_PORT=${PGO_HG_PORT:-18543}
HG_ADMIN_PORT=${PGO_HG_ADMIN_PORT:-18580}
CEIL_PORT=${PGO_CEIL_PORT:-18544}
FIXTURES=tests/fixtures/admission/kube-apiserver-1.20.2

mkdir -p "${CARGO_TARGET_DIR:-target}"
TARGET_DIR=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
HOST=$(rustc -vV | sed -n 's/^host: //p')
LLVM=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
GEN_DIR=$TARGET_DIR/pgo-generate
USE_DIR=$TARGET_DIR/pgo
DATA=$TARGET_DIR/pgo-data

# llvm-profdata must be of rustc's LLVM major version: the raw profile format changes.
profdata() {
  local sysroot candidate
  sysroot=$(rustc --print sysroot)
  for candidate in "llvm-profdata-$LLVM" "$sysroot/lib/rustlib/$HOST/bin/llvm-profdata" llvm-profdata; do
    if command -v "$candidate" >/dev/null \
      && "$candidate" merge --version 2>/dev/null | grep -q "version $LLVM\."; then
      echo "$candidate"; return
    fi
  done
  return 1
}
# shellcheck source=scripts/need.sh
. scripts/need.sh
# shellcheck source=scripts/servers.sh
. scripts/servers.sh
PROFDATA=$(profdata) || {
  apt_install "llvm-$LLVM" || true
  PROFDATA=$(profdata) || {
    echo "pgo.sh: llvm-profdata for LLVM $LLVM is needed (apt-get install llvm-$LLVM)" >&2; exit 1
  }
}
need wrk wrk

build() { # dir rustflags
  RUSTFLAGS="$2" CARGO_TARGET_DIR="$1" cargo build --release --locked --quiet --target "$HOST" \
    --bin hookguard --example ceiling
}

echo "pgo.sh: building the instrumented binaries" >&2
build "$GEN_DIR" "-Cprofile-generate=$DATA/unused"
GEN=$GEN_DIR/$HOST/release
STAMP=$(cat "$GEN/hookguard" "$GEN/examples/ceiling" | sha256sum | cut -c1-16)

if [ "$(cat "$DATA/trained" 2>/dev/null)" != "$STAMP" ] || ! ls "$DATA"/merged-*.profdata >/dev/null 2>&1; then
  echo "pgo.sh: training" >&2
  rm -rf "$DATA/train" "$DATA"/merged-*.profdata "$DATA/trained"
  mkdir -p "$DATA/train"
  TMP=$(mktemp -d)
  PIDS=()
  cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
  trap cleanup EXIT
  export LLVM_PROFILE_FILE="$DATA/train/%m_%p.profraw"
  "$GEN/hookguard" certs --out "$TMP" --host 127.0.0.1 >/dev/null
  # As load.sh runs them (JSON logs at info, metrics on).
  start_hookguard "$GEN/hookguard" "$HG_PORT" "$HG_ADMIN_PORT" "$TMP" info
  HG_PID=$!
  start_ceiling "$GEN/examples/ceiling" "$CEIL_PORT" "$TMP"
  CEIL_PID=$!
  wait_serving "$HG_ADMIN_PORT" "$HG_PORT" "$CEIL_PORT"
  for review in "$FIXTURES"/*.json; do
    for port in "$HG_PORT" "$CEIL_PORT"; do
      WRK_BODY=$review wrk -t2 -c8 -d"${TRAIN_SECS}s" -s scripts/load.lua \
        "https://127.0.0.1:$port" | grep -q '^RESULT.* errors=0$' \
        || { echo "pgo.sh: training with $review on port $port had errors" >&2; exit 1; }
    done
  done
  for path in metrics readyz livez; do
    curl -sf -o /dev/null "http://127.0.0.1:$HG_ADMIN_PORT/$path"
  done
  kill -INT "$HG_PID" "$CEIL_PID"
  wait "$HG_PID" "$CEIL_PID"
  PIDS=()
  "$PROFDATA" merge -o "$DATA/merged.tmp" "$DATA"/train/*.profraw
  HASH=$(sha256sum "$DATA/merged.tmp" | cut -c1-16)
  mv "$DATA/merged.tmp" "$DATA/merged-$HASH.profdata"
  rm -rf "$DATA/train"
  echo "$STAMP" >"$DATA/trained"
fi

PROFILE=$(ls "$DATA"/merged-*.profdata)
echo "pgo.sh: building with the profile ($(basename "$PROFILE"))" >&2
build "$USE_DIR" "-Cprofile-use=$PROFILE"
echo "hookguard=$USE_DIR/$HOST/release/hookguard"
echo "ceiling=$USE_DIR/$HOST/release/examples/ceiling"
