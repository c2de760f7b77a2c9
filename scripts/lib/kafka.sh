# shellcheck shell=bash
# What scripts/kafka.sh (one broker) and scripts/kafka-cluster.sh (three nodes) share, sourced
# after lib/common.sh: the Kafka jars and where they are cached, the class-data archives, the
# tool JVM, and how a broker process is launched, recognised and seen to end.
# Knobs: KAFKA_VERSION (4.4.0), KAFKA_CDS (1), TIM_RELAY_CACHE (~/.cache/tim-relay).

KAFKA_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
KAFKA_CDS=${KAFKA_CDS:-1}
TIM_RELAY_CACHE=${TIM_RELAY_CACHE:-$HOME/.cache/tim-relay}
CACHE=$TIM_RELAY_CACHE/kafka-$KAFKA_VERSION
LIBS=$CACHE/libs
POM=$KAFKA_SCRIPTS/kafka/pom.xml

# ---- jars -----------------------------------------------------------------------------------

# True if the cache holds the jars of this pom: the marker holds the pom's hash, so editing the
# pom (e.g. a new log4j) refetches.
jars_complete() {
  local stamp
  stamp=$(sha256sum "$POM" | cut -d' ' -f1)
  [[ -f $CACHE/.complete && $(<"$CACHE/.complete") == "$stamp" ]]
}

# Fetches the jars with `mvn` into $LIBS (the one way jars arrive: `kafka.sh fetch`, under its lock).
fetch_jars() {
  local stamp out
  jars_complete && return 0
  stamp=$(sha256sum "$POM" | cut -d' ' -f1)
  command -v mvn >/dev/null || die "mvn not found; install Maven (and a JDK 17+)"
  say "fetching Kafka $KAFKA_VERSION jars into $LIBS"
  mkdir -p "$CACHE"
  rm -rf "$LIBS" "$LIBS.part" "$CACHE/.complete" "$CACHE"/*.jsa
  # Copy into a side folder and rename, so an interrupted fetch never looks done.
  # mvn's output (even -q prints colour codes) is only shown when it fails.
  out=$(mvn -q -B -Dstyle.color=never -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS.part" 2>&1) \
    || { echo "$out" >&2; rm -rf "$LIBS.part"; die "mvn could not fetch Kafka $KAFKA_VERSION; check KAFKA_VERSION and access to Maven Central"; }
  mv "$LIBS.part" "$LIBS"
  echo "$stamp" >"$CACHE/.complete"
}

# ---- JVMs -----------------------------------------------------------------------------------

# Class-data sharing: a JVM given ArchiveClassesAtExit writes the classes it loaded to an
# archive when it exits cleanly; later JVMs of that kind map it and start 1-3 s sooner (2 cores,
# ~90 jars). The JVM silently ignores an archive that does not match (other java, other jars).
# Only kafka.sh records archives (the second argument); kafka-cluster.sh only maps them, so the
# two scripts cannot race on them. Sets CDS=(flags...).
CDS=()
cds_for() {  # $1 = broker|tools, $2 = where to record if no archive yet (optional)
  CDS=()
  [[ $KAFKA_CDS == 1 ]] || return 0
  if [[ -s $CACHE/$1.jsa ]]; then
    CDS=("-XX:SharedArchiveFile=$CACHE/$1.jsa" -Xlog:cds=off -Xlog:cds+dynamic=off)
  elif [[ -n ${2:-} ]]; then
    CDS=("-XX:ArchiveClassesAtExit=$2" -Xlog:cds=off -Xlog:cds+dynamic=off)
  fi
}

# Tool JVMs: small heap, warnings only, on stderr (stdout is the tool's output).
TOOL_JVM=(-Xmx256m -XX:+UseSerialGC -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$KAFKA_SCRIPTS/kafka/log4j2-tools.properties" -cp "$LIBS/*")
tool_java() { cds_for tools; java "${TOOL_JVM[@]}" "${CDS[@]}" "$@"; }
# `exec_tool MAIN ARGS...`: this shell becomes the tool.
exec_tool() { cds_for tools; exec java "${TOOL_JVM[@]}" "${CDS[@]}" "$@"; }

# ---- broker processes -----------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# `kafka_running PIDFILE PROPS`: true if PIDFILE names a live kafka.Kafka on *this* config (a
# bare `kill -0` would be fooled by pid reuse after a reboot or SIGKILL).
kafka_running() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(<"$1")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  # (No `| grep -q`: with pipefail, grep quitting early fails the pipeline.)
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *"kafka.Kafka $2 "* ]]
}

# `launch_kafka HEAP OPTS PROPS LOG PIDFILE`: a broker on PROPS in the background, its output in
# LOG (the previous run's kept as LOG.prev for post-mortems); returns once the pid is java's.
launch_kafka() {
  local heap=$1 opts=$2 props=$3 log=$4 pid_file=$5 i
  [[ -f $log ]] && mv -f "$log" "$log.prev"
  # setsid: own session, so a Ctrl-C or the caller's process group going away does not take
  # the broker with it; `stop` is the way to end it. The lock (fd 9) stays with us.
  # shellcheck disable=SC2086  # HEAP / OPTS are word lists on purpose
  setsid java $heap -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "${CDS[@]}" "-Dlog4j2.configurationFile=$KAFKA_SCRIPTS/kafka/log4j2-broker.properties" $opts \
    -cp "$LIBS/*" kafka.Kafka "$props" </dev/null >"$log" 2>&1 9<&- &
  echo $! >"$pid_file"
  # $! is a forked shell until it has exec'd java; `kafka_running` would say no.
  for ((i = 0; i < 50; i++)); do kafka_running "$pid_file" "$props" && break; sleep 0.1; done
}

# Process $1 is gone, or is a zombie whose threads have all exited (so its ports are closed):
# its parent is init, which may reap it a second later.
dead() {
  local st
  st=$(awk '/^State:/ {s = $2} /^Threads:/ {t = $2} END {print s t}' "/proc/$1/status" 2>/dev/null) || return 0
  [[ -z $st || $st == Z1 ]]
}

# `log_tail LOG LINES`: why a broker died, to stderr.
log_tail() {
  [[ -f $1 ]] || return 0
  say "last lines of $1:"
  tail -n "$2" "$1" >&2
}
