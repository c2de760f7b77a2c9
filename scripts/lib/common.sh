# shellcheck shell=bash
# What the scripts in scripts/ share, sourced (not run): their messages, the Debian packages they
# install, one lifecycle change at a time, the usage text in their header, and clean-up on exit.

# Messages go to stderr, each starting with the name of the script that was run.
ME=$(basename "$0")
say() { echo "$ME: $*" >&2; }
die() { say "$*"; exit 1; }

# `as_root CMD...`: as is when we are root, else through sudo.
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# `apt_install [--update] PACKAGE...`: quietly, from Debian. Without --update the package lists
# are refreshed only when the install fails without it (a warm machine pays nothing).
apt_install() {
  local update=0
  if [[ ${1:-} == --update ]]; then update=1; shift; fi
  if ((!update)) && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null 2>&1; then
    return 0
  fi
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# `hold_lock FILE WHAT`: one lifecycle change at a time, for up to 300 s. The lock is FILE opened
# read-only on fd 9; what the caller starts must not inherit it (9<&-).
hold_lock() {
  exec 9<"$1"
  flock -w 300 9 || die "another $ME $2 is still busy after 300s"
}

# `usage FILE LAST CODE`: lines 2..LAST of FILE (its header comment) to stderr, then exit CODE.
usage() { sed -n "2,${2}p" "$1" | sed 's/^# \{0,1\}//' >&2; exit "$3"; }

# `on_exit FUNCTION`: FUNCTION runs at exit; Ctrl-C exits 130 and SIGTERM 143, through it.
on_exit() {
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# `start_kafka`: scripts/kafka.sh's broker, started (and waited for) if it is not running;
# STARTED_KAFKA=1 when this call started it, so the caller stops it again at the end.
# (`status` exits 3 for stopped; `start` is idempotent and waits until the broker answers.)
STARTED_KAFKA=0
start_kafka() {
  local status=0 kafka_sh
  kafka_sh=$(dirname "${BASH_SOURCE[0]}")/../kafka.sh
  bash "$kafka_sh" status >/dev/null 2>&1 || status=$?
  if ((status == 3)); then STARTED_KAFKA=1; fi
  bash "$kafka_sh" start
}
