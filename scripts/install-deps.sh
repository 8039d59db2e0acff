#!/usr/bin/env bash
# Installs what the local backend servers need, and only what is missing (idempotent):
#   - Debian packages: redis-server, redis-tools; postgresql only when no
#     /usr/lib/postgresql/*/bin/postgres exists; a Java 17+ runtime and Maven if absent;
#     prometheus (with promtool) if absent, for the rules' tests and scripts/observe.sh.
#   - Apache Kafka server + CLI jars from Maven Central (scripts/kafka/pom.xml), copied into
#     $TALLY_KAFKA_HOME/libs (default ~/.cache/tally/kafka-<version>/libs).
#   - Debian's chromium when absent, for the dashboard's browser test.
# Non-interactive (fine with CI=true and no stdin). Needs root (or passwordless sudo) only when a
# Debian package is missing.
#
# Environment: TALLY_KAFKA_VERSION (default 4.3.1), TALLY_KAFKA_HOME, XDG_CACHE_HOME.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/lib.sh"

usage() {
  cat <<EOF
usage: scripts/install-deps.sh
Installs redis-server/redis-tools (and postgresql, java, maven, prometheus, chromium when absent) from Debian,
and the Kafka $TALLY_KAFKA_VERSION jars into $TALLY_KAFKA_LIBS. Safe to run repeatedly.
EOF
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

# ---------------------------------------------------------------------------------------------
# Debian packages

apt_install() {
  local sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      tally_die "missing Debian packages: $*; run as root or: sudo apt-get install -y $*"
    fi
  fi
  command -v apt-get >/dev/null 2>&1 || tally_die "missing packages ($*) and no apt-get to install them"
  local log
  log="$(mktemp -t tally-apt.XXXXXX)"
  tally_log "apt: installing $* (log: $log)"
  # DPkg::Lock::Timeout waits for a concurrent apt/dpkg instead of failing at once.
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -q -o DPkg::Lock::Timeout=600 update >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    tally_die "apt-get update failed (log: $log)"
  fi
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold install --no-install-recommends "$@" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    tally_die "apt-get install $* failed (log: $log)"
  fi
  rm -f "$log"
}

pkgs=()
command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
tally_pg_bin >/dev/null || pkgs+=(postgresql)
command -v java >/dev/null 2>&1 || pkgs+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus)
if ((${#pkgs[@]})); then
  apt_install "${pkgs[@]}"
  # Debian's postinst may have started system redis/postgresql/prometheus on their default ports:
  # they are not ours and do not clash with ours (16379/15432/19090), so they are left alone.
fi
command -v redis-server >/dev/null 2>&1 || tally_die "redis-server still not found after install"
tally_pg_bin >/dev/null || tally_die "no /usr/lib/postgresql/*/bin/postgres after installing postgresql"
command -v promtool >/dev/null 2>&1 || tally_die "promtool still not found after installing prometheus"

java_major="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
java_major="${java_major%%.*}"
[[ "$java_major" =~ ^[0-9]+$ ]] || tally_die "could not read the Java version from 'java -version'"
((java_major >= 17)) || tally_die "Kafka 4 needs Java 17+, found Java $java_major ($(command -v java))"

tally_log "deps: redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), postgresql $("$(tally_pg_bin)/postgres" --version | awk '{print $3}'), java $java_major"

# ---------------------------------------------------------------------------------------------
# Kafka jars from Maven Central (in a subshell: its early `exit 0` ends only this block)

(
marker="$TALLY_KAFKA_LIBS/.tally-complete"
stamp="$TALLY_KAFKA_VERSION $(sha256sum "$TALLY_KAFKA_POM" | cut -c1-16)"
if [[ -f "$marker" && "$(cat "$marker")" == "$stamp" && -f "$TALLY_KAFKA_LIBS/kafka_2.13-$TALLY_KAFKA_VERSION.jar" ]]; then
  tally_log "kafka: $TALLY_KAFKA_VERSION jars present in $TALLY_KAFKA_LIBS"
  exit 0
fi

tally_log "kafka: fetching $TALLY_KAFKA_VERSION jars from Maven Central into $TALLY_KAFKA_LIBS"
mkdir -p "$TALLY_KAFKA_HOME"
tmp="$(mktemp -d "$TALLY_KAFKA_HOME/libs.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mvn_log="$TALLY_KAFKA_HOME/mvn.log"
start=$SECONDS
if ! mvn -q -B --no-transfer-progress -Dstyle.color=never -f "$TALLY_KAFKA_POM" -Dkafka.version="$TALLY_KAFKA_VERSION" \
  dependency:copy-dependencies -DoutputDirectory="$tmp" </dev/null >"$mvn_log" 2>&1; then
  grep -E "ERROR.*(Failed|Could not)" "$mvn_log" | head -n 5 >&2 || tail -n 30 "$mvn_log" >&2
  tally_die "mvn could not fetch Kafka $TALLY_KAFKA_VERSION (log: $mvn_log). Is the version on Maven Central with all its modules (kafka_2.13, kafka-tools)? Set TALLY_KAFKA_VERSION to another 4.x >= 4.1."
fi

# The jars without which the broker would start broken or silent.
for pattern in "kafka_2.13-$TALLY_KAFKA_VERSION.jar" "kafka-tools-$TALLY_KAFKA_VERSION.jar" \
  "kafka-clients-$TALLY_KAFKA_VERSION.jar" 'log4j-core-2.*.jar' 'log4j-slf4j2-impl-2.*.jar' \
  'slf4j-api-2.*.jar' 'jackson-dataformat-yaml-*.jar'; do
  compgen -G "$tmp/$pattern" >/dev/null || tally_die "kafka: $pattern missing after mvn (see $TALLY_KAFKA_POM)"
done
if compgen -G "$tmp/slf4j-api-1.*.jar" >/dev/null || compgen -G "$tmp/log4j-slf4j-impl-*.jar" >/dev/null; then
  tally_die "kafka: both SLF4J 1.x and 2.x on the classpath in $tmp (see $TALLY_KAFKA_POM)"
fi
printf '%s\n' "$stamp" >"$tmp/.tally-complete"

rm -rf "$TALLY_KAFKA_LIBS"
mv "$tmp" "$TALLY_KAFKA_LIBS"
trap - EXIT
tally_log "kafka: $(find "$TALLY_KAFKA_LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$TALLY_KAFKA_LIBS" | cut -f1)) in $((SECONDS - start))s"
)

# ---------------------------------------------------------------------------------------------
# Chromium for the dashboard's browser test (services/gateway/dashboard.integration.test.ts):
# Debian's package, driven by playwright-core, which never downloads a browser of its own.

if command -v chromium >/dev/null 2>&1; then
  tally_log "chromium: present ($(command -v chromium))"
else
  tally_log "chromium: installing Debian's chromium for the dashboard's browser test"
  apt_install chromium fonts-liberation
  command -v chromium >/dev/null 2>&1 || tally_die "chromium still not found after install"
  tally_log "chromium: installed ($(command -v chromium))"
fi
