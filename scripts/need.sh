# Sourced by the scripts that use tools from Debian's archive (load.sh, pgo.sh).

# apt_install PACKAGE: installs it when run as root on a machine with apt-get (updating the
# package lists only if the first try fails); fails otherwise.
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  echo "$(basename "$0"): installing $1 from Debian's archive" >&2
  apt-get install -y -qq "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$1" >/dev/null; }
}

# need COMMAND PACKAGE: COMMAND, installed from PACKAGE when missing, or an error naming both.
need() {
  command -v "$1" >/dev/null && return
  apt_install "$2" || { echo "$(basename "$0"): $1 is needed (apt-get install $2)" >&2; exit 1; }
}
