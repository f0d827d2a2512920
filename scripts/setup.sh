#!/usr/bin/env bash
# Installs and starts what expeed-sync and its tests need on a Debian machine, idempotently:
# Debian packages (InfluxDB 1.x, Redis, VictoriaMetrics for the 2.x write-path tests,
# docker-compose to validate the compose file), the npm dependencies, then a local InfluxDB on
# 127.0.0.1:8086 and Redis on 127.0.0.1:6379 when nothing answers there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

INFLUX_PORT="${EXPEED_LOCAL_INFLUX_PORT:-8086}"
REDIS_PORT="${EXPEED_LOCAL_REDIS_PORT:-6379}"
STATE_DIR="${EXPEED_LOCAL_DIR:-${TMPDIR:-/tmp}/expeed-sync-local}"
WITH_TEST_TOOLS="${WITH_TEST_TOOLS:-0}"

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- Node.js -----------------------------------------------------------------------------------
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  say "Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none)); install it first, e.g. from nodejs.org or NodeSource"
  exit 1
fi

# --- Debian packages -------------------------------------------------------------------------
need=()
command -v influxd >/dev/null || need+=(influxdb)
command -v curl >/dev/null || need+=(curl)
if ! answers "$REDIS_PORT" && ! command -v redis-server >/dev/null; then need+=(redis-server); fi
if [ "$WITH_TEST_TOOLS" = 1 ]; then
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v prometheus >/dev/null || need+=(prometheus)
fi
if [ "${#need[@]}" -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  apt_log="${TMPDIR:-/tmp}/expeed-sync-apt.log"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$apt_log" 2>&1; then
    say "installing ${need[*]} failed; the last lines of $apt_log:"
    tail -20 "$apt_log" >&2
    exit 1
  fi
fi

# --- npm dependencies ------------------------------------------------------------------------
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

# --- Redis -----------------------------------------------------------------------------------
if ! answers "$REDIS_PORT"; then
  say "starting redis-server on 127.0.0.1:$REDIS_PORT"
  mkdir -p "$STATE_DIR/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE_DIR/redis" \
    --appendonly yes --maxmemory-policy noeviction --logfile "$STATE_DIR/redis/redis.log"
  for _ in $(seq 50); do answers "$REDIS_PORT" && break; sleep 0.1; done
fi

# --- InfluxDB 1.x ----------------------------------------------------------------------------
if ! curl -fsS -o /dev/null "http://127.0.0.1:$INFLUX_PORT/ping" 2>/dev/null; then
  say "starting influxd on 127.0.0.1:$INFLUX_PORT (data in $STATE_DIR/influxdb)"
  dir="$STATE_DIR/influxdb"
  mkdir -p "$dir"
  cat >"$dir/influxdb.conf" <<CONF
reporting-enabled = false
bind-address = "127.0.0.1:$((INFLUX_PORT + 2))"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1m"
[coordinator]
  write-timeout = "30s"
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
CONF
  nohup influxd -config "$dir/influxdb.conf" >"$dir/influxd.log" 2>&1 &
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$INFLUX_PORT/ping" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "http://127.0.0.1:$INFLUX_PORT/ping" || { say "influxd did not start; see $dir/influxd.log"; tail -20 "$dir/influxd.log" >&2; exit 1; }
fi
say "ready: Redis 127.0.0.1:$REDIS_PORT, InfluxDB http://127.0.0.1:$INFLUX_PORT"
