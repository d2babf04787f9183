# Sourced by load.sh and pgo.sh: the servers they run, started the same way for the profile's
# training (pgo.sh) as for the measurement (load.sh). Each start appends the server's PID to
# the caller's PIDS array (the caller stops them); `$!` is the PID afterwards too.

# start_hookguard BIN PORT ADMIN_PORT DIR LOG_LEVEL: hookguard as in production, with JSON logs
# (one line per decision) to DIR/hookguard.log and metrics on; DIR holds tls.crt and tls.key.
start_hookguard() {
  "$1" --log-format json --log-level "$5" serve --addr "127.0.0.1:$2" \
    --admin-addr "127.0.0.1:$3" --tls-cert "$4/tls.crt" --tls-key "$4/tls.key" \
    --shutdown-delay 0s >"$4/hookguard.log" 2>&1 &
  PIDS+=("$!")
}

# start_ceiling BIN PORT DIR [--check-json]: the ceiling server (the floor with --check-json).
start_ceiling() {
  "$1" "127.0.0.1:$2" "$3/tls.crt" "$3/tls.key" "${@:4}" &
  PIDS+=("$!")
}

# serving ADMIN_PORT PORT...: whether hookguard's /readyz passes and every PORT answers over TLS.
serving() {
  curl -sf -o /dev/null "http://127.0.0.1:$1/readyz" || return 1
  local port
  for port in "${@:2}"; do curl -sk -o /dev/null "https://127.0.0.1:$port/" || return 1; done
}

# wait_serving ADMIN_PORT PORT...: waits until `serving` (10 s at most); the callers' own first
# requests then say what is wrong, if anything is.
wait_serving() {
  for _ in $(seq 100); do
    serving "$@" && return
    sleep 0.1
  done
}
