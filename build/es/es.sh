#!/bin/sh
# es.sh - a throw-away, single-node Elasticsearch for beacongrid's
# integration tests and local development.
#
#   build/es/es.sh fetch    download (Maven Central, via mvn) and unpack the distribution
#   build/es/es.sh start    fetch if needed, start in the background, wait until yellow
#   build/es/es.sh stop     stop it (SIGTERM, then SIGKILL after ES_STOP_TIMEOUT)
#   build/es/es.sh status   print whether it runs and its health; exit 3 when down
#   build/es/es.sh url      print the HTTP URL
#
# Everything lives under $ROOT/.cache/es (git-ignored):
#   elasticsearch-$ES_VERSION/   the unpacked distribution (read-only use)
#   run/config/                  the node's config (elasticsearch.yml written here)
#   run/data/, run/logs/         data and logs (the node log is run/logs/beacongrid-es.log)
#   run/es.pid                   pidfile
#   run/url                      the URL, one line (written once the node is healthy)
#   run/es.env                   "export BEACONGRID_ES_URL=<url>" for `. run/es.env`
#
# The distribution is org.elasticsearch.distribution.integ-test-zip:elasticsearch
# (Elastic's own test distribution): no bundled JDK, no GET /, no data
# streams, ILM or ingest. Elasticsearch refuses to run as root, so when this
# script runs as root it runs the node as the system user beacongrid-es
# (created on first use).
#
# Environment (all optional):
#   ES_VERSION          default 8.19.7
#   ES_PORT             HTTP port, default 9250
#   ES_TRANSPORT_PORT   transport port, default ES_PORT+100
#   ES_JAVA_OPTS        default "-Xms512m -Xmx512m"
#   ES_START_TIMEOUT    seconds to wait for yellow health, default 120
#   ES_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL, default 30
#   ES_USER             user to run as when root, default beacongrid-es
#   ES_RUN              the node's run directory (config, data, logs, pidfile),
#                       default $ROOT/.cache/es/run; a second node needs its own
#                       ES_RUN and ES_PORT (its parents must be readable by ES_USER)
#   JAVA_HOME           default: derived from `java` on PATH (Java 17+)
#
# The script works without a terminal (CI=true, no stdin) and every command
# is safe to repeat: start on a running, healthy node only prints its URL;
# stop on a stopped node does nothing.
set -eu

ES_VERSION=${ES_VERSION:-8.19.7}
ES_PORT=${ES_PORT:-9250}
ES_TRANSPORT_PORT=${ES_TRANSPORT_PORT:-$((ES_PORT + 100))}
ES_START_TIMEOUT=${ES_START_TIMEOUT:-120}
ES_STOP_TIMEOUT=${ES_STOP_TIMEOUT:-30}
ES_USER=${ES_USER:-beacongrid-es}
ES_HOST=127.0.0.1

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=$ROOT/.cache/es
ES_HOME=$CACHE/elasticsearch-$ES_VERSION
RUN=${ES_RUN:-$CACHE/run}
PIDFILE=$RUN/es.pid
URL=http://$ES_HOST:$ES_PORT
ARTIFACT=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip
M2_REPO=${M2_REPO:-$HOME/.m2/repository}
ZIP=$M2_REPO/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip

log() { printf 'es.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH"; }

# with_lock runs "$@" holding an exclusive lock, so two concurrent calls
# (two CI steps, two terminals) do not unpack or start twice.
with_lock() {
	mkdir -p "$CACHE"
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$CACHE/.lock"
		flock -w 300 9 || die "timed out waiting for $CACHE/.lock"
	fi
	"$@"
}

# ---------------------------------------------------------------- fetch

do_fetch() {
	if [ -x "$ES_HOME/bin/elasticsearch" ]; then
		return 0
	fi
	if [ ! -s "$ZIP" ]; then
		need mvn
		log "downloading $ARTIFACT (Maven Central)"
		# -B: batch mode (no prompts, no progress bars); stdin is not needed.
		mvn -B -q -Dstyle.color=never dependency:get -Dartifact="$ARTIFACT" -Dtransitive=false \
			-Dmaven.repo.local="$M2_REPO" </dev/null ||
			die "mvn could not download $ARTIFACT"
		[ -s "$ZIP" ] || die "mvn succeeded but $ZIP is missing"
	fi
	need unzip
	log "unpacking $ZIP"
	tmp=$CACHE/.unpack.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	unzip -q "$ZIP" -d "$tmp" || {
		rm -rf "$tmp"
		die "unzip $ZIP failed"
	}
	[ -x "$tmp/elasticsearch-$ES_VERSION/bin/elasticsearch" ] || {
		rm -rf "$tmp"
		die "$ZIP does not hold elasticsearch-$ES_VERSION/bin/elasticsearch"
	}
	rm -rf "$ES_HOME"
	mv "$tmp/elasticsearch-$ES_VERSION" "$ES_HOME"
	rm -rf "$tmp"
	log "unpacked into $ES_HOME"
}

# ---------------------------------------------------------------- helpers

pid_alive() {
	[ -s "$PIDFILE" ] || return 1
	pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null
}

healthy() {
	curl -fsS -m 10 "$URL/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null 2>&1
}

java_home() {
	if [ -n "${ES_JAVA_HOME:-}" ]; then
		echo "$ES_JAVA_HOME"
	elif [ -n "${JAVA_HOME:-}" ]; then
		echo "$JAVA_HOME"
	else
		need java
		j=$(readlink -f "$(command -v java)")
		dirname "$(dirname "$j")"
	fi
}

# as_user runs "$@" as the node's user: ourselves, or ES_USER when root.
as_user() {
	if [ "$(id -u)" -ne 0 ]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u "$ES_USER" -- "$@"
	else
		# su needs one command string; quote each word.
		cmd=
		for a in "$@"; do
			cmd="$cmd '$(printf %s "$a" | sed "s/'/'\\\\''/g")'"
		done
		su -s /bin/sh -c "$cmd" "$ES_USER"
	fi
}

ensure_user() {
	[ "$(id -u)" -eq 0 ] || return 0
	if ! id "$ES_USER" >/dev/null 2>&1; then
		need useradd
		log "creating system user $ES_USER"
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$ES_USER" ||
			die "useradd $ES_USER failed"
	fi
	as_user test -r "$ES_HOME/lib" -a -x "$ES_HOME/bin/elasticsearch" ||
		die "user $ES_USER cannot read $ES_HOME (check the permissions of its parent directories)"
}

tail_logs() {
	# launcher.log holds the CLI's own output (bad settings, JVM errors)
	# followed by a copy of the node log; the node log comes last.
	for f in "$RUN/logs/launcher.log" "$RUN/logs/beacongrid-es.log"; do
		[ -s "$f" ] || continue
		log "---- last lines of $f ----"
		tail -n 30 "$f" | cut -c1-400 >&2
	done
}

# security_setting prints the line that turns security off when this
# distribution knows the setting. xpack.security.enabled is registered by the
# x-pack-core module; a distribution without it aborts on the unknown setting.
# 8.19.7's integ-test zip ships x-pack-core and x-pack-security, and without
# the setting security is on: the node auto-configures TLS on HTTP (plain
# http:// requests are dropped) and sets no password, so it is unusable here.
security_setting() {
	if [ -d "$ES_HOME/modules/x-pack-core" ]; then
		echo "xpack.security.enabled: false"
	fi
}

write_config() {
	mkdir -p "$RUN/config" "$RUN/data" "$RUN/logs" "$RUN/tmp"
	# Logs of an earlier run would be mistaken for this one's on failure.
	rm -rf "$RUN/logs" && mkdir -p "$RUN/logs"
	# Start from the distribution's config each time; keep the keystore.
	cp -Rp "$ES_HOME/config/." "$RUN/config/"
	cat >"$RUN/config/elasticsearch.yml" <<EOF
# Written by build/es/es.sh; overwritten on every start.
cluster.name: beacongrid-es
node.name: beacongrid-es-0
discovery.type: single-node
network.host: $ES_HOST
http.port: $ES_PORT
transport.port: $ES_TRANSPORT_PORT
path.data: $RUN/data
path.logs: $RUN/logs
action.destructive_requires_name: false
cluster.routing.allocation.disk.threshold_enabled: false
$(security_setting)
EOF
	# The stock jvm.options writes gc.log and hs_err files relative to the
	# working directory; keep them in the log directory instead, and small.
	sed -e "s|file=gc.log|file=$RUN/logs/gc.log|" \
		-e "s|filecount=32,filesize=64m|filecount=2,filesize=16m|" \
		-e "s|ErrorFile=hs_err|ErrorFile=$RUN/logs/hs_err|" \
		"$ES_HOME/config/jvm.options" >"$RUN/config/jvm.options"
	echo "-XX:HeapDumpPath=$RUN/logs" >>"$RUN/config/jvm.options"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$ES_USER" "$RUN"
	fi
	rm -f "$RUN/url" "$RUN/es.env"
}

write_url() {
	echo "$URL" >"$RUN/url"
	echo "export BEACONGRID_ES_URL=$URL" >"$RUN/es.env"
}

# ---------------------------------------------------------------- start

do_start() {
	need curl
	if pid_alive; then
		if healthy; then
			write_url
			log "already running (pid $(cat "$PIDFILE"))"
			echo "$URL"
			return 0
		fi
		log "pid $(cat "$PIDFILE") is alive but not healthy; waiting for it"
	else
		rm -f "$PIDFILE"
		if healthy; then
			die "something else already answers on $URL; set ES_PORT to another port"
		fi
		do_fetch
		ensure_user
		write_config
		jh=$(java_home)
		[ -x "$jh/bin/java" ] || die "no java at $jh/bin/java; set JAVA_HOME to a Java 17+ JDK"
		log "starting Elasticsearch $ES_VERSION on $URL (java: $jh)"
		start=$(date +%s)
		# -d daemonizes; -p writes the pidfile. stdin is /dev/null so that
		# nothing (keystore password prompt) can block in CI.
		if ! (cd "$RUN" && as_user env \
			ES_JAVA_HOME="$jh" \
			ES_PATH_CONF="$RUN/config" ES_TMPDIR="$RUN/tmp" \
			ES_JAVA_OPTS="${ES_JAVA_OPTS:--Xms512m -Xmx512m}" \
			"$ES_HOME/bin/elasticsearch" -d -p "$PIDFILE" \
			</dev/null >"$RUN/logs/launcher.log" 2>&1); then
			tail_logs
			die "Elasticsearch failed to start"
		fi
	fi
	wait_healthy
	write_url
	log "up after $(($(date +%s) - ${start:-$(date +%s)})) s"
	echo "$URL"
}

wait_healthy() {
	deadline=$(($(date +%s) + ES_START_TIMEOUT))
	while :; do
		if healthy; then
			return 0
		fi
		if ! pid_alive; then
			tail_logs
			die "Elasticsearch exited during start-up"
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			tail_logs
			# Do not leave a half-started node behind: the next start must
			# begin from scratch.
			ES_STOP_TIMEOUT=10 do_stop
			die "Elasticsearch did not reach yellow health within ${ES_START_TIMEOUT}s"
		fi
		sleep 1
	done
}

# ---------------------------------------------------------------- stop

do_stop() {
	if ! pid_alive; then
		rm -f "$PIDFILE" "$RUN/url" "$RUN/es.env"
		log "not running"
		return 0
	fi
	pid=$(cat "$PIDFILE")
	log "stopping pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$i" -ge "$ES_STOP_TIMEOUT" ]; then
			log "still running after ${ES_STOP_TIMEOUT}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 1
			break
		fi
		sleep 1
		i=$((i + 1))
	done
	rm -f "$PIDFILE" "$RUN/url" "$RUN/es.env"
	log "stopped"
}

# ---------------------------------------------------------------- status

do_status() {
	if pid_alive; then
		if health=$(curl -fsS -m 10 "$URL/_cluster/health" 2>/dev/null); then
			echo "running pid=$(cat "$PIDFILE") url=$URL health=$health"
			return 0
		fi
		echo "running pid=$(cat "$PIDFILE") url=$URL health=unreachable"
		return 1
	fi
	echo "stopped"
	return 3
}

usage() {
	echo "usage: $0 fetch|start|stop|status|url" >&2
	exit 2
}

[ $# -eq 1 ] || usage
case $1 in
fetch) with_lock do_fetch ;;
start) with_lock do_start ;;
stop) with_lock do_stop ;;
status) do_status ;;
url) echo "$URL" ;;
*) usage ;;
esac
