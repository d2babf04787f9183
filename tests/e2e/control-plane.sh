#!/usr/bin/env bash
# hookguard end-to-end control plane: a real etcd + kube-apiserver + kube-controller-manager
# (Kubernetes v1.20.2) on 127.0.0.1, obtained from Debian's package archive only and cached
# outside the repository (like controller-runtime's envtest does for Go projects).
#
#   control-plane.sh install                 build/cache the binaries (idempotent, fast when cached)
#   control-plane.sh up DIR                  start the control plane, all state under DIR
#   control-plane.sh down [--clean] DIR      stop it (by the PIDs in DIR/pids); --clean removes DIR
#   control-plane.sh run DIR -- CMD...       up, run CMD with DIR/env exported, down always
#   control-plane.sh restart-apiserver DIR [TERM|KILL]
#                                            stop kube-apiserver with that signal (default TERM)
#                                            and start it again on the same port and etcd
#
# Environment:
#   HOOKGUARD_CACHE            cache root (default: $HOME/.cache/hookguard)
#   HOOKGUARD_DEBIAN_MIRROR    Debian mirror (default: http://deb.debian.org)
#   HOOKGUARD_CP_READY_TIMEOUT seconds to wait for /readyz (default: 60)
#   HOOKGUARD_CP_STOP_GRACE    `restart-apiserver` only: seconds from SIGTERM to SIGKILL (default 30)
#   HOOKGUARD_CP_WATCH_PID     `up` only: PID whose death stops the servers (default: the
#                              caller, $PPID; 0 = no watchdog, servers run until `down`)
#
# See tests/e2e/README.md.
set -Eeuo pipefail

readonly K8S_VERSION=v1.20.2
readonly K8S_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
readonly DEB_SRC_VERSION=1.20.5+really1.20.2-1.1+deb12u1
readonly ORIG_TARBALL=kubernetes_1.20.5+really1.20.2.orig.tar.gz
readonly ORIG_SHA256=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc
readonly GO_PKGS=(golang-1.15-go golang-1.15-src)

SELF=$(readlink -f "${BASH_SOURCE[0]}")
readonly SELF
REPO_ROOT=$(cd "$(dirname "$SELF")/../.." && pwd -P)
readonly REPO_ROOT
# shellcheck source=scripts/ports.sh
. "$REPO_ROOT/scripts/ports.sh"
CACHE_ROOT=${HOOKGUARD_CACHE:-${HOME:?HOME must be set}/.cache/hookguard}
readonly CP_CACHE=$CACHE_ROOT/control-plane/$K8S_VERSION
readonly BIN_DIR=$CP_CACHE/bin
readonly STAMP=$CP_CACHE/install.stamp
readonly DL_DIR=$CP_CACHE/downloads
readonly APT_DIR=$CP_CACHE/apt
readonly BUILD_DIR=$CP_CACHE/build
readonly BUILD_LOG=$CP_CACHE/build.log
readonly MIRROR=${HOOKGUARD_DEBIAN_MIRROR:-http://deb.debian.org}
readonly MARKER=.hookguard-control-plane

CP_STEP=start
CP_STOP_DIR=      # set while servers started by this process must be stopped on exit
CP_CHILD_PID=     # `run`: the PID of CMD while it runs
CP_LOG_ON_FAIL=   # a log whose tail is shown when the current step fails

# ---------------------------------------------------------------------------------------------
# reporting

say() { printf 'control-plane: %s\n' "$*" >&2; }

CP_STEP_T0=
CP_TIMINGS=()
step() {
  local now
  now=$(now_ms)
  [[ -z $CP_STEP_T0 ]] || CP_TIMINGS+=("$CP_STEP $(fmt_secs $((now - CP_STEP_T0)))")
  CP_STEP_T0=$now
  CP_STEP=$1
  say "$1"
}

die() {
  printf "control-plane: step '%s' failed: %s\n" "$CP_STEP" "$*" >&2
  exit 1
}

on_err() {
  local rc=$1 cmd=$2 line=$3
  # failures inside $(...) are reported once, by the command that used the substitution
  ((BASH_SUBSHELL == 0)) || return 0
  printf "control-plane: step '%s' failed: command \`%s\` exited with status %s (%s line %s)\n" \
    "$CP_STEP" "$cmd" "$rc" "$SELF" "$line" >&2
  if [[ -n $CP_LOG_ON_FAIL && -f $CP_LOG_ON_FAIL ]]; then
    printf 'control-plane: last 40 lines of %s:\n' "$CP_LOG_ON_FAIL" >&2
    tail -n 40 "$CP_LOG_ON_FAIL" >&2 || true
  fi
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $CP_CHILD_PID ]] && kill -0 "$CP_CHILD_PID" 2>/dev/null; then
    kill -TERM "$CP_CHILD_PID" 2>/dev/null || true
  fi
  if [[ -n $CP_STOP_DIR ]]; then
    stop_servers "$CP_STOP_DIR" || true
  fi
  exit "$rc"
}

trap 'on_err $? "$BASH_COMMAND" $LINENO' ERR
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() {
  local t=${EPOCHREALTIME//[.,]/}
  echo $((t / 1000))
}

fmt_secs() { # milliseconds -> "12.3s"
  printf '%d.%ds' $(($1 / 1000)) $((($1 % 1000) / 100))
}

basenames() {
  local f names=()
  for f in "$@"; do names+=("${f##*/}"); done
  echo "${names[*]}"
}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF" >&2
  exit 2
}

# ---------------------------------------------------------------------------------------------
# install

installed() {
  [[ -f $STAMP && -x $BIN_DIR/kube-apiserver && -x $BIN_DIR/kube-controller-manager && -x $BIN_DIR/etcd ]] &&
    [[ "$(<"$STAMP")" == *"source_sha256=$ORIG_SHA256"* ]]
}

ensure_system_packages() {
  step 'install system packages (etcd-server rsync openssl make curl)'
  local missing=()
  [[ -x /usr/bin/etcd ]] || missing+=(etcd-server)
  command -v rsync >/dev/null 2>&1 || missing+=(rsync)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if ((${#missing[@]} == 0)); then
    say 'system packages: all present'
    return 0
  fi
  ((EUID == 0)) || die "packages missing (${missing[*]}) and not running as root to apt-get install them"
  say "apt-get install -y ${missing[*]}"
  local log=$CACHE_ROOT/apt-install.log
  mkdir -p "$CACHE_ROOT"
  CP_LOG_ON_FAIL=$log
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    say 'apt-get install failed; running apt-get update and retrying'
    DEBIAN_FRONTEND=noninteractive apt-get update >>"$log" 2>&1 ||
      die "apt-get update failed (see $log): $(tail -n 3 "$log" | tr '\n' ' ')"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1 ||
      die "apt-get install ${missing[*]} failed (see $log): $(tail -n 3 "$log" | tr '\n' ' ')"
  fi
  CP_LOG_ON_FAIL=
  [[ -x /usr/bin/etcd ]] || die 'etcd-server is installed but /usr/bin/etcd is missing'
}

# A private apt configuration: /etc/apt and the system's package lists stay untouched.
APT_OPTS=()
apt_private_config() {
  step 'prepare private apt configuration'
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
  local kr=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -f $kr ]] || die "$kr not found (package debian-archive-keyring)"
  cat >"$APT_DIR/sources.list" <<EOF
deb-src [signed-by=$kr] $MIRROR/debian bookworm main
deb-src [signed-by=$kr] $MIRROR/debian bookworm-updates main
deb-src [signed-by=$kr] $MIRROR/debian-security bookworm-security main
deb [signed-by=$kr] $MIRROR/debian bullseye main
EOF
  APT_OPTS=(
    -o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache=$APT_DIR/cache"
    -o "APT::Sandbox::User=root"
    -o "Acquire::Languages=none"
    -o "Acquire::PDiffs=false"
  )
}

APT_UPDATED=0
apt_private_update() {
  ((APT_UPDATED == 0)) || return 0
  step 'update private apt index (bookworm sources, bullseye binaries)'
  CP_LOG_ON_FAIL=$BUILD_LOG
  local log=$CP_CACHE/apt-update.log
  apt-get "${APT_OPTS[@]}" update >"$log" 2>&1 || {
    cat "$log" >>"$BUILD_LOG"
    die "apt-get update with the private configuration failed (network? see $BUILD_LOG): $(tail -n 3 "$log" | tr '\n' ' ')"
  }
  cat "$log" >>"$BUILD_LOG"
  # apt-get update exits 0 when indexes cannot be fetched ("W: Failed to fetch …"), and the
  # next step would then fail with a misleading "no deb-src URIs": name the real cause here.
  local failed
  failed=$(grep -E '^(W|E): Failed to fetch' "$log" | head -n 4 | tr '\n' ' ') || true
  [[ -z $failed ]] ||
    die "apt-get update could not fetch the Debian indexes from $MIRROR (network or HOOKGUARD_DEBIAN_MIRROR? see $BUILD_LOG): $failed"
  APT_UPDATED=1
}

download_k8s_source() {
  step 'download kubernetes source'
  local tarball=$DL_DIR/$ORIG_TARBALL
  if [[ -f $tarball ]]; then
    if [[ "$(sha256sum "$tarball" | cut -d' ' -f1)" == "$ORIG_SHA256" ]]; then
      say "kubernetes source: already in cache ($tarball, sha256 ok)"
      return 0
    fi
    say "kubernetes source: cached $tarball has the wrong sha256; downloading again"
    rm -f "$tarball"
  fi
  apt_private_update
  step 'download kubernetes source'
  local tmp=$DL_DIR/tmp-source
  rm -rf "$tmp"
  mkdir -p "$tmp"
  (cd "$tmp" && apt-get "${APT_OPTS[@]}" source --download-only "kubernetes=$DEB_SRC_VERSION") >>"$BUILD_LOG" 2>&1 ||
    die "apt-get source --download-only kubernetes=$DEB_SRC_VERSION failed (see $BUILD_LOG): $(tail -n 3 "$BUILD_LOG" | tr '\n' ' ')"
  [[ -f $tmp/$ORIG_TARBALL ]] || die "apt-get source did not produce $ORIG_TARBALL (got: $(basenames "$tmp"/*))"
  step 'verify kubernetes source sha256'
  local got
  got=$(sha256sum "$tmp/$ORIG_TARBALL" | cut -d' ' -f1)
  if [[ $got != "$ORIG_SHA256" ]]; then
    rm -rf "$tmp"
    die "sha256 mismatch for $ORIG_TARBALL: expected $ORIG_SHA256, got $got (file removed)"
  fi
  mv "$tmp/$ORIG_TARBALL" "$tarball"
  rm -rf "$tmp"
  say "kubernetes source: $tarball (sha256 $got)"
}

download_go() {
  step 'download go 1.15 (golang-1.15-go, golang-1.15-src from bullseye)'
  local sums=$DL_DIR/golang-1.15.sha256 p have=1
  for p in "${GO_PKGS[@]}"; do
    compgen -G "$DL_DIR/${p}_*.deb" >/dev/null || have=0
  done
  if ((have)) && [[ -f $sums ]] && (cd "$DL_DIR" && sha256sum --quiet -c "$sums") >>"$BUILD_LOG" 2>&1; then
    say "go 1.15: already in cache ($(basenames "$DL_DIR"/golang-1.15-*.deb))"
    return 0
  fi
  apt_private_update
  step 'download go 1.15 (golang-1.15-go, golang-1.15-src from bullseye)'
  rm -f "$DL_DIR"/golang-1.15-*.deb "$sums"
  (cd "$DL_DIR" && apt-get "${APT_OPTS[@]}" download "${GO_PKGS[@]}") >>"$BUILD_LOG" 2>&1 ||
    die "apt-get download ${GO_PKGS[*]} failed (see $BUILD_LOG): $(tail -n 3 "$BUILD_LOG" | tr '\n' ' ')"
  for p in "${GO_PKGS[@]}"; do
    compgen -G "$DL_DIR/${p}_*.deb" >/dev/null || die "apt-get download did not produce ${p}_*.deb"
  done
  (cd "$DL_DIR" && sha256sum golang-1.15-*.deb >"$sums")
  say "go 1.15: $(basenames "$DL_DIR"/golang-1.15-*.deb)"
}

build_control_plane() {
  rm -rf "$BUILD_DIR"
  mkdir -p "$BUILD_DIR"

  step 'unpack go 1.15'
  local deb
  for deb in "$DL_DIR"/golang-1.15-*.deb; do
    dpkg-deb -x "$deb" "$BUILD_DIR/go" || die "dpkg-deb -x $deb failed"
  done
  local goroot=$BUILD_DIR/go/usr/lib/go-1.15
  [[ -x $goroot/bin/go ]] || die "$goroot/bin/go not found after unpacking"
  export GOROOT=$goroot
  export PATH=$GOROOT/bin:$PATH
  export GOPATH=$BUILD_DIR/gopath GOCACHE=$BUILD_DIR/gocache GOTMPDIR=$BUILD_DIR/gotmp
  export GOPROXY=off GOSUMDB=off
  mkdir -p "$GOTMPDIR"
  local gover
  gover=$(go version) || die 'the unpacked go does not run'
  say "using $gover"

  step 'unpack kubernetes source'
  mkdir -p "$BUILD_DIR/extract"
  tar -xzf "$DL_DIR/$ORIG_TARBALL" -C "$BUILD_DIR/extract" || die "tar -xzf $ORIG_TARBALL failed"
  local src
  src=$(dirname "$(dirname "$(find "$BUILD_DIR/extract" -maxdepth 4 -path '*/cmd/kube-apiserver' -type d | head -n 1)")")
  [[ -f $src/go.mod && -d $src/vendor ]] || die "no kubernetes tree with go.mod and vendor/ found in $ORIG_TARBALL"

  # hack/lib/version.sh must not ask git (the tree is not a git checkout)
  export KUBE_GIT_COMMIT=$K8S_COMMIT KUBE_GIT_TREE_STATE=clean KUBE_GIT_VERSION=$K8S_VERSION
  export KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 GIT_CEILING_DIRECTORIES=$BUILD_DIR

  step 'generate openapi (make gen_openapi)'
  CP_LOG_ON_FAIL=$BUILD_LOG
  make -C "$src" gen_openapi >>"$BUILD_LOG" 2>&1 || die "make gen_openapi failed (see $BUILD_LOG)"
  [[ -f $src/pkg/generated/openapi/zz_generated.openapi.go ]] ||
    die 'make gen_openapi did not produce pkg/generated/openapi/zz_generated.openapi.go'

  local build_date x ldflags=(-s -w)
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for x in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=(
      "-X $x.gitVersion=$K8S_VERSION" "-X $x.gitCommit=$K8S_COMMIT" "-X $x.gitTreeState=clean"
      "-X $x.buildDate=$build_date" "-X $x.gitMajor=1" "-X $x.gitMinor=20"
    )
  done
  mkdir -p "$BUILD_DIR/out"
  local bin
  for bin in kube-apiserver kube-controller-manager; do
    step "build $bin"
    local t0
    t0=$(now_ms)
    (cd "$src" && GO111MODULE=on GOFLAGS=-mod=vendor CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags[*]}" -o "$BUILD_DIR/out/$bin" "./cmd/$bin") >>"$BUILD_LOG" 2>&1 ||
      die "go build ./cmd/$bin failed (see $BUILD_LOG)"
    say "built $bin in $(fmt_secs $(($(now_ms) - t0)))"
  done
  CP_LOG_ON_FAIL=

  step 'install binaries'
  local v
  v=$("$BUILD_DIR/out/kube-apiserver" --version) || die 'the built kube-apiserver does not run'
  [[ $v == "Kubernetes $K8S_VERSION" ]] || die "kube-apiserver --version says '$v', expected 'Kubernetes $K8S_VERSION'"
  mkdir -p "$BIN_DIR"
  for bin in kube-apiserver kube-controller-manager; do
    install -m 0755 "$BUILD_DIR/out/$bin" "$BIN_DIR/.$bin.tmp"
    mv -f "$BIN_DIR/.$bin.tmp" "$BIN_DIR/$bin"
  done
  ln -sfn /usr/bin/etcd "$BIN_DIR/etcd"
  cat >"$STAMP.tmp" <<EOF
kubernetes_version=$K8S_VERSION
kubernetes_commit=$K8S_COMMIT
debian_source=kubernetes=$DEB_SRC_VERSION
source_sha256=$ORIG_SHA256
go=$gover
etcd=$(/usr/bin/etcd --version 2>/dev/null | head -n 1)
built_at=$build_date
EOF
  mv -f "$STAMP.tmp" "$STAMP"

  step 'clean build tree'
  cd /
  rm -rf "$BUILD_DIR" "$APT_DIR"
}

cmd_install() {
  (($# == 0)) || usage
  local t0
  t0=$(now_ms)
  case "$CP_CACHE/" in
    "$REPO_ROOT"/*) step 'check cache location'; die "the cache ($CP_CACHE) must be outside the repository ($REPO_ROOT); set HOOKGUARD_CACHE" ;;
  esac
  ensure_system_packages
  step 'check cache'
  if installed; then
    say "cached: $BIN_DIR/{etcd,kube-apiserver,kube-controller-manager} ($(fmt_secs $(($(now_ms) - t0))))"
    return 0
  fi
  mkdir -p "$CP_CACHE" "$DL_DIR"
  step 'take install lock'
  exec 9>"$CP_CACHE/.install.lock"
  flock -w 3600 9 || die "could not lock $CP_CACHE/.install.lock within an hour"
  if installed; then # another process finished the build while we waited
    say "cached (built by a concurrent install): $BIN_DIR"
    return 0
  fi
  say "not cached yet: building into $CP_CACHE (log: $BUILD_LOG)"
  : >"$BUILD_LOG"
  apt_private_config
  download_k8s_source
  download_go
  build_control_plane
  step 'done'
  local t
  for t in "${CP_TIMINGS[@]}"; do say "  took: $t"; done
  say "installed $BIN_DIR/{etcd,kube-apiserver,kube-controller-manager} in $(fmt_secs $(($(now_ms) - t0)))"
}

# ---------------------------------------------------------------------------------------------
# up / down

require_installed() {
  installed || die "the control plane is not installed in $CP_CACHE: run '$SELF install' first"
}

alive() { # a running (not zombie) process
  local pid=$1 stat
  [[ -r /proc/$pid/stat ]] || return 1
  stat=$(<"/proc/$pid/stat") || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

proc_start() { # start time of a process (field 22 of /proc/PID/stat), to tell a recycled PID
  local stat fields
  stat=$(<"/proc/$1/stat") || return 1
  stat=${stat##*) }
  read -ra fields <<<"$stat"
  echo "${fields[19]}"
}

ours() { # alive and started for DIR (guards against a recycled PID)
  local pid=$1 dir=$2 cmdline
  alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$dir/"* ]]
}

ours_watchdog() {
  local pid=$1 dir=$2 cmdline
  alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *" __watchdog $dir "* ]]
}

stop_servers() {
  local dir=$1 pid wpid
  if [[ -f $dir/watchdog.pid ]]; then
    wpid=$(<"$dir/watchdog.pid")
    if [[ $wpid =~ ^[0-9]+$ && $wpid != "$$" ]] && ours_watchdog "$wpid" "$dir"; then kill -TERM "$wpid" 2>/dev/null || true; fi
    rm -f "$dir/watchdog.pid"
  fi
  [[ -f $dir/pids ]] || return 0
  local pids=() line
  while IFS= read -r line; do [[ $line =~ ^[0-9]+$ ]] && pids=("$line" "${pids[@]}"); done <"$dir/pids"
  local live=()
  for pid in "${pids[@]}"; do
    if ours "$pid" "$dir"; then
      kill -TERM "$pid" 2>/dev/null || true
      live+=("$pid")
    fi
  done
  local deadline=$((SECONDS + 10)) left
  while :; do
    left=()
    for pid in "${live[@]}"; do alive "$pid" && left+=("$pid"); done
    ((${#left[@]} == 0 || SECONDS >= deadline)) && break
    sleep 0.2
  done
  for pid in "${left[@]}"; do
    say "down: PID $pid did not stop within 10 s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in "${live[@]}"; do # reap our own children (no zombies left behind)
    wait "$pid" 2>/dev/null || true
  done
  rm -f "$dir/pids"
  say "down: stopped ${#live[@]} process(es) of $dir"
}

canonical_dir() { # DIR must exist
  (cd "$1" && pwd -P)
}

wait_for_url() { # what url timeout pid log pattern: until a 2xx answer matches the glob pattern
  local what=$1 url=$2 timeout=$3 pid=$4 log=$5 pattern=$6
  local deadline=$((SECONDS + timeout)) out
  while :; do
    out=$(curl -fsS --noproxy '*' --max-time 3 "${CURL_AUTH[@]}" "$url" 2>/dev/null) || out=
    # shellcheck disable=SC2053 # pattern is a glob on purpose
    if [[ -n $out && $out == $pattern ]]; then return 0; fi
    if ! alive "$pid"; then
      say "$what exited; last 40 lines of $log:"
      tail -n 40 "$log" >&2 || true
      die "$what (PID $pid) exited before it was ready"
    fi
    if ((SECONDS >= deadline)); then
      say "$what not ready after ${timeout}s (last answer: ${out:-none}); last 40 lines of $log:"
      tail -n 40 "$log" >&2 || true
      die "$what did not become ready within ${timeout}s"
    fi
    sleep 0.3
  done
}

write_kubeconfig() { # file server ca token user
  local ca_data
  ca_data=$(base64 -w0 <"$3")
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hookguard-e2e
  cluster:
    server: $2
    certificate-authority-data: $ca_data
users:
- name: $5
  user:
    token: $4
contexts:
- name: hookguard-e2e
  context:
    cluster: hookguard-e2e
    user: $5
current-context: hookguard-e2e
EOF
  chmod 600 "$1"
}

ossl() { openssl "$@" 2>>"$OSSL_LOG"; }

make_pki() {
  local pki=$1
  mkdir -p "$pki"
  chmod 700 "$pki"
  cat >"$pki/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = hookguard-e2e
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
  OSSL_LOG=$pki/openssl.log
  CP_LOG_ON_FAIL=$OSSL_LOG
  ossl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 -config "$pki/openssl.cnf" \
    -extensions v3_ca -subj /CN=hookguard-e2e-ca -keyout "$pki/ca.key" -out "$pki/ca.crt"
  ossl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 -config "$pki/openssl.cnf" \
    -extensions v3_ca -subj /CN=hookguard-e2e-front-proxy-ca -keyout "$pki/front-proxy-ca.key" \
    -out "$pki/front-proxy-ca.crt"
  ossl req -new -nodes -newkey rsa:2048 -sha256 -config "$pki/openssl.cnf" -subj /CN=kube-apiserver \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr"
  ossl x509 -req -sha256 -days 365 -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -extfile "$pki/openssl.cnf" -extensions v3_server \
    -out "$pki/apiserver.crt"
  ossl genrsa -out "$pki/sa.key" 2048
  ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
  chmod 600 "$pki"/*.key
  CP_LOG_ON_FAIL=
  ADMIN_TOKEN=$(openssl rand -hex 24)
  KCM_TOKEN=$(openssl rand -hex 24)
  printf '%s,admin,hookguard-e2e-admin,"system:masters"\n%s,system:kube-controller-manager,hookguard-e2e-kcm\n' \
    "$ADMIN_TOKEN" "$KCM_TOKEN" >"$pki/tokens.csv"
  chmod 600 "$pki/tokens.csv"
}

start_bg() { # name log cmd... ; appends the PID to $DIR/pids
  local name=$1 log=$2 dir=$3
  shift 3
  "$@" </dev/null >>"$log" 2>&1 &
  local pid=$!
  echo "$pid" >>"$dir/pids"
  say "up: started $name (PID $pid, log $log)"
  LAST_PID=$pid
}

start_watchdog() { # dir watch-pid
  local dir=$1 watch=$2
  if [[ $watch == 0 ]]; then
    say 'up: no watchdog (HOOKGUARD_CP_WATCH_PID=0): the servers run until down'
    return 0
  fi
  setsid "$SELF" __watchdog "$dir" "$watch" </dev/null >>"$dir/logs/watchdog.log" 2>&1 &
  say "up: watchdog stops the servers when PID $watch exits"
}

cmd_watchdog() { # internal: dir watch-pid
  local dir=$1 watch=$2
  trap - EXIT INT
  trap 'exit 0' TERM
  CP_STEP=watchdog
  echo "$$" >"$dir/watchdog.pid"
  while kill -0 "$watch" 2>/dev/null; do
    [[ -f $dir/pids ]] || exit 0
    sleep 1
  done
  [[ -f $dir/pids ]] || exit 0
  say "watchdog: PID $watch is gone; stopping the servers of $dir"
  rm -f "$dir/watchdog.pid"
  local cmd_pid cmd_start
  if [[ -f $dir/cmd.pid ]] && read -r cmd_pid cmd_start <"$dir/cmd.pid" && [[ $cmd_pid =~ ^[0-9]+$ ]] &&
    [[ -n $cmd_start && "$(proc_start "$cmd_pid" 2>/dev/null)" == "$cmd_start" ]]; then
    say "watchdog: stopping the command of 'run' (PID $cmd_pid)"
    kill -TERM "$cmd_pid" 2>/dev/null || true
  fi
  rm -f "$dir/cmd.pid"
  stop_servers "$dir"
}

start_apiserver() { # dir api-port etcd-url; the same command line for `up` and `restart-apiserver`
  local dir=$1 api_port=$2 etcd_url=$3 pki=$1/pki
  start_bg kube-apiserver "$dir/logs/kube-apiserver.log" "$dir" "$BIN_DIR/kube-apiserver" \
    --bind-address=127.0.0.1 --secure-port="$api_port" --advertise-address=127.0.0.1 --insecure-port=0 \
    --etcd-servers="$etcd_url" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" --api-audiences=https://kubernetes.default.svc \
    --authorization-mode=RBAC --enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none --allow-privileged=true \
    --cert-dir="$pki"
}

CURL_AUTH=()
LAST_PID=
cmd_up() { # dir watch-pid
  local dir=$1 watch=$2 t0
  t0=$(now_ms)
  step 'up: check installation'
  require_installed
  command -v curl >/dev/null 2>&1 || die 'curl is needed (run install)'
  command -v openssl >/dev/null 2>&1 || die 'openssl is needed (run install)'

  step "up: prepare $dir"
  mkdir -p "$dir"
  dir=$(canonical_dir "$dir")
  if [[ -f $dir/pids ]]; then
    local p
    while IFS= read -r p; do
      if [[ $p =~ ^[0-9]+$ ]] && ours "$p" "$dir"; then die "a control plane is already running in $dir (PID $p); run '$SELF down $dir' first"; fi
    done <"$dir/pids"
  fi
  if [[ -f $dir/$MARKER ]]; then
    rm -rf "${dir:?}/etcd" "${dir:?}/pki" "${dir:?}/logs" "${dir:?}/kcm-certs" "$dir/kubeconfig" \
      "$dir/kcm.kubeconfig" "$dir/env" "$dir/pids" "$dir/ports" "$dir/watchdog.pid" "$dir/cmd.pid"
  elif [[ -n "$(ls -A "$dir")" ]]; then
    die "$dir is not empty and was not made by this script; use a new or empty directory"
  fi
  : >"$dir/$MARKER"
  chmod 700 "$dir"
  mkdir -p "$dir/logs" "$dir/kcm-certs"
  CP_STOP_DIR=$dir

  step 'up: pick free ports'
  local ports
  ports=$(free_ports 5) || die 'could not find free ports on 127.0.0.1'
  local etcd_client etcd_peer etcd_metrics api_port kcm_port
  read -r etcd_client etcd_peer etcd_metrics api_port kcm_port <<<"$ports"
  printf 'etcd_client=%s\netcd_peer=%s\netcd_metrics=%s\napiserver=%s\nkube_controller_manager=%s\n' \
    "$etcd_client" "$etcd_peer" "$etcd_metrics" "$api_port" "$kcm_port" >"$dir/ports"
  say "up: ports etcd=$etcd_client apiserver=$api_port controller-manager=$kcm_port"

  step 'up: make PKI (openssl)'
  local pki=$dir/pki
  make_pki "$pki"
  local server=https://127.0.0.1:$api_port
  write_kubeconfig "$dir/kubeconfig" "$server" "$pki/ca.crt" "$ADMIN_TOKEN" admin
  write_kubeconfig "$dir/kcm.kubeconfig" "$server" "$pki/ca.crt" "$KCM_TOKEN" system:kube-controller-manager
  : >"$dir/pids"
  start_watchdog "$dir" "$watch"

  step 'up: start etcd'
  local etcd_url=http://127.0.0.1:$etcd_client
  start_bg etcd "$dir/logs/etcd.log" "$dir" "$BIN_DIR/etcd" \
    --name hookguard-e2e --data-dir "$dir/etcd" --logger=zap --log-outputs=stderr \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "hookguard-e2e=http://127.0.0.1:$etcd_peer" --initial-cluster-state new \
    --initial-cluster-token hookguard-e2e --listen-metrics-urls "http://127.0.0.1:$etcd_metrics"
  local etcd_pid=$LAST_PID
  CURL_AUTH=()
  wait_for_url etcd "$etcd_url/health" 30 "$etcd_pid" "$dir/logs/etcd.log" '*"health":"true"*'

  step 'up: start kube-apiserver'
  start_apiserver "$dir" "$api_port" "$etcd_url"
  local api_pid=$LAST_PID

  step 'up: wait for kube-apiserver /readyz'
  CURL_AUTH=(--cacert "$pki/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN")
  wait_for_url kube-apiserver "$server/readyz" "${HOOKGUARD_CP_READY_TIMEOUT:-60}" "$api_pid" \
    "$dir/logs/kube-apiserver.log" ok
  local t_ready
  t_ready=$(now_ms)
  say "up: kube-apiserver ready after $(fmt_secs $((t_ready - t0)))"

  step 'up: start kube-controller-manager'
  start_bg kube-controller-manager "$dir/logs/kube-controller-manager.log" "$dir" "$BIN_DIR/kube-controller-manager" \
    --kubeconfig="$dir/kcm.kubeconfig" --authentication-kubeconfig="$dir/kcm.kubeconfig" \
    --authorization-kubeconfig="$dir/kcm.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" --port=0 --cert-dir="$dir/kcm-certs" \
    --controllers=garbagecollector,job,serviceaccount-token,serviceaccount,namespace \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=true --leader-elect=false
  local kcm_pid=$LAST_PID

  # Pods can only be created once the namespace's default service account has its token
  # (ServiceAccount admission, 1.20), so wait for the controller-manager to make it.
  step 'up: wait for kube-controller-manager (token of serviceaccount default/default)'
  wait_for_url kube-controller-manager "$server/api/v1/namespaces/default/serviceaccounts/default" \
    "${HOOKGUARD_CP_READY_TIMEOUT:-60}" "$kcm_pid" "$dir/logs/kube-controller-manager.log" '*"secrets"*'

  step 'up: write env'
  {
    printf 'KUBECONFIG=%q\n' "$dir/kubeconfig"
    printf 'HOOKGUARD_E2E_KUBECONFIG=%q\n' "$dir/kubeconfig"
    printf 'HOOKGUARD_E2E_DIR=%q\n' "$dir"
    printf 'APISERVER_PORT=%q\n' "$api_port"
    printf 'APISERVER_URL=%q\n' "$server"
  } >"$dir/env"
  say "up: ready in $(fmt_secs $(($(now_ms) - t0))) (apiserver $server, pids $(tr '\n' ' ' <"$dir/pids"))"
  say "up: KUBECONFIG=$dir/kubeconfig; env in $dir/env; stop with: $SELF down $dir"
  UP_DIR=$dir
}

cmd_down() {
  local clean=0 dir=
  while (($#)); do
    case $1 in
      --clean) clean=1 ;;
      -*) usage ;;
      *) [[ -z $dir ]] || usage; dir=$1 ;;
    esac
    shift
  done
  [[ -n $dir ]] || usage
  step "down $dir"
  if [[ ! -d $dir ]]; then
    say "down: $dir does not exist; nothing to stop"
    return 0
  fi
  dir=$(canonical_dir "$dir")
  if [[ -f $dir/pids ]]; then
    stop_servers "$dir"
  else
    say "down: nothing running in $dir (no pids file)"
    rm -f "$dir/watchdog.pid"
  fi
  if ((clean)); then
    [[ -f $dir/$MARKER ]] || die "refusing to remove $dir: it was not made by this script (no $MARKER)"
    rm -rf "${dir:?}"
    say "down: removed $dir"
  fi
}

port_of() { # dir name: a port from DIR/ports
  local line
  while IFS= read -r line; do
    [[ $line == "$2="* ]] && { echo "${line#*=}"; return 0; }
  done <"$1/ports"
  return 1
}

# Stops the kube-apiserver of a running control plane (SIGTERM: graceful, or SIGKILL) and
# starts it again with the same command line, port, etcd and PKI; waits for /readyz. The
# fault tests use it to take the apiserver away under load (tests/e2e_faults.rs).
cmd_restart_apiserver() {
  local dir=${1:-} sig=${2:-TERM}
  [[ -n $dir && ($sig == TERM || $sig == KILL) ]] || usage
  step "restart-apiserver: find kube-apiserver of $dir"
  [[ -f $dir/pids && -f $dir/ports ]] || die "no running control plane in $dir"
  dir=$(canonical_dir "$dir")
  local pid old='' p cmdline
  while IFS= read -r p; do
    if ! [[ $p =~ ^[0-9]+$ ]] || ! ours "$p" "$dir"; then continue; fi
    cmdline=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
    [[ $cmdline == "$BIN_DIR/kube-apiserver "* ]] && old=$p
  done <"$dir/pids"
  [[ -n $old ]] || die "no kube-apiserver of $dir is running"
  local api_port etcd_port t0
  api_port=$(port_of "$dir" apiserver) || die "no apiserver port in $dir/ports"
  etcd_port=$(port_of "$dir" etcd_client) || die "no etcd port in $dir/ports"
  t0=$(now_ms)
  step "restart-apiserver: SIG$sig to PID $old"
  kill "-$sig" "$old"
  # Like the kubelet: SIGTERM, then SIGKILL after the grace period (kube-apiserver 1.20 waits
  # up to 60 s for open watches after SIGTERM).
  local grace=${HOOKGUARD_CP_STOP_GRACE:-30} how=SIG$sig
  local deadline=$((SECONDS + grace))
  while alive "$old"; do
    if ((SECONDS >= deadline)) && [[ $how == SIG$sig ]]; then
      kill -KILL "$old" 2>/dev/null || true
      how="SIG$sig+SIGKILL after ${grace}s"
    fi
    sleep 0.1
  done
  local t_down
  t_down=$(now_ms)
  # The old PID leaves the list, the new one joins it (`down` and the watchdog read it).
  local rest
  rest=$(grep -vx "$old" "$dir/pids" || true)
  printf '%s\n' "$rest" | grep -E '^[0-9]+$' >"$dir/pids.tmp" || true
  mv -f "$dir/pids.tmp" "$dir/pids"
  step 'restart-apiserver: start kube-apiserver'
  start_apiserver "$dir" "$api_port" "http://127.0.0.1:$etcd_port"
  pid=$LAST_PID
  local token
  token=$(cut -d, -f1 <"$dir/pki/tokens.csv" | head -n 1)
  CURL_AUTH=(--cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $token")
  wait_for_url kube-apiserver "https://127.0.0.1:$api_port/readyz" "${HOOKGUARD_CP_READY_TIMEOUT:-60}" "$pid" \
    "$dir/logs/kube-apiserver.log" ok
  say "restart-apiserver: PID $old stopped by $how in $(fmt_secs $((t_down - t0))), PID $pid ready after $(fmt_secs $(($(now_ms) - t_down)))"
  echo "$pid"
}

cmd_run() {
  if (($# < 3)) || [[ $2 != -- ]]; then usage; fi
  local dir=$1
  shift 2
  UP_DIR=
  cmd_up "$dir" "$$"
  dir=$UP_DIR
  set -a
  # shellcheck source=/dev/null
  . "$dir/env"
  set +a
  step "run: $*"
  local rc=0
  "$@" <&0 &
  CP_CHILD_PID=$!
  # lets the watchdog stop CMD too if this script is killed
  echo "$CP_CHILD_PID $(proc_start "$CP_CHILD_PID" 2>/dev/null || true)" >"$dir/cmd.pid"
  wait "$CP_CHILD_PID" || rc=$?
  CP_CHILD_PID=
  rm -f "$dir/cmd.pid"
  step "run: command exited with status $rc"
  exit "$rc"
}

main() {
  (($#)) || usage
  local cmd=$1
  shift
  case $cmd in
    install) cmd_install "$@" ;;
    up)
      (($# == 1)) || usage
      UP_DIR=
      cmd_up "$1" "${HOOKGUARD_CP_WATCH_PID:-$PPID}"
      CP_STOP_DIR= # success: leave the servers running
      ;;
    down) cmd_down "$@" ;;
    run) cmd_run "$@" ;;
    restart-apiserver) cmd_restart_apiserver "$@" ;;
    __watchdog) cmd_watchdog "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
