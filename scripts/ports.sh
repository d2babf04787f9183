# Sourced by the scripts that start servers on 127.0.0.1 (tests/e2e/control-plane.sh,
# scripts/instructions.sh, scripts/load-smoke.sh).

# free_ports N: N distinct "free" ports on 127.0.0.1, on one line: bound by the kernel to port 0,
# then released for the servers to take.
free_ports() {
  local n=$1
  if command -v python3 >/dev/null 2>&1 && python3 - "$n" <<'EOF' 2>/dev/null; then return 0; fi
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
  # fallback: probe random ports with bash's /dev/tcp (connection refused = free)
  local ports=() p tries=0
  while ((${#ports[@]} < n)); do
    ((tries++ < 1000)) || return 1
    p=$((20000 + RANDOM % 12000))
    [[ " ${ports[*]} " == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then ports+=("$p"); fi
  done
  echo "${ports[*]}"
}
