#!/usr/bin/env bash
# Measures the finalizer sidecar with N managed hooks (default 10000) on the real control
# plane: time to ready, full-resync time, RSS. Brings a control plane up (and down) unless
# HOOKGUARD_E2E_KUBECONFIG already points at one.
#   scripts/finalizer-scale.sh [N]
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-10000}
if [[ -z ${HOOKGUARD_E2E_KUBECONFIG:-} ]]; then
  dir=$(mktemp -d /tmp/hookguard-scale.XXXXXX)
  exec tests/e2e/control-plane.sh run "$dir" -- "$0" "$n"
fi
cargo build --release --bin hookguard --example finalizer_scale
HOOKGUARD_BIN=target/release/hookguard target/release/examples/finalizer_scale "$n"
