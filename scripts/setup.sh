#!/usr/bin/env bash
# Installs and starts what expeed-sync and its tests need on a Debian machine, idempotently:
# Debian packages (InfluxDB 1.x, Redis, VictoriaMetrics for the 2.x write-path tests,
# docker-compose to validate the compose file; podman and debootstrap to build the image), the npm dependencies, then a local InfluxDB on
# 127.0.0.1:8086 and Redis on 127.0.0.1:6379 when nothing answers there; with WITH_TEST_TOOLS=1 also a
# local 3-master Redis Cluster (127.0.0.1:7001-7003) for the cluster tests; with WITH_BENCH_TOOLS=1
# also wrk, the load generator of `npm run bench:webhook`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

INFLUX_PORT="${EXPEED_LOCAL_INFLUX_PORT:-8086}"
REDIS_PORT="${EXPEED_LOCAL_REDIS_PORT:-6379}"
STATE_DIR="${EXPEED_LOCAL_DIR:-${TMPDIR:-/tmp}/expeed-sync-local}"
WITH_TEST_TOOLS="${WITH_TEST_TOOLS:-0}"
WITH_BENCH_TOOLS="${WITH_BENCH_TOOLS:-0}"
# first port of the test cluster's three masters (TEST_REDIS_CLUSTER_NODES in the tests)
CLUSTER_PORT="${EXPEED_LOCAL_CLUSTER_PORT:-7001}"

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
  # podman builds and runs the container image from the Dockerfile;
  # debootstrap makes the stand-in for node:20-slim where no registry image can be pulled
  command -v podman >/dev/null || need+=(podman)
  # the image runs under runc: podman's default crun fails on these VMs (test/integration/image.test.ts)
  command -v runc >/dev/null || need+=(runc)
  command -v debootstrap >/dev/null || need+=(debootstrap)
fi
if [ "$WITH_BENCH_TOOLS" = 1 ]; then
  command -v wrk >/dev/null || need+=(wrk)
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

# --- Redis Cluster for the tests -----------------------------------------------------------------
cluster_ok() { [ "$(redis-cli -p "$CLUSTER_PORT" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p')" = ok ]; }
if [ "$WITH_TEST_TOOLS" = 1 ] && ! cluster_ok; then
  ports=("$CLUSTER_PORT" "$((CLUSTER_PORT + 1))" "$((CLUSTER_PORT + 2))")
  say "starting a 3-master Redis Cluster on 127.0.0.1:${ports[0]}-${ports[2]} (data in $STATE_DIR/redis-cluster)"
  for port in "${ports[@]}"; do
    dir="$STATE_DIR/redis-cluster/$port"
    if ! answers "$port"; then
      # a node left from an earlier, unfinished run keeps a nodes.conf that would not join a new cluster
      rm -rf "$dir" && mkdir -p "$dir"
      redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" --cluster-enabled yes \
        --cluster-config-file nodes.conf --cluster-node-timeout 5000 --appendonly no --save '' \
        --maxmemory-policy noeviction --logfile "$dir/redis.log"
    fi
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 50); do answers "$port" && break; sleep 0.1; done
    answers "$port" || { say "redis-server on $port did not start; see $STATE_DIR/redis-cluster/$port/redis.log"; exit 1; }
  done
  # nodes that answer but hold no slots (fresh) are joined; a half-made cluster is reset first
  if [ "$(redis-cli -p "$CLUSTER_PORT" cluster info | tr -d '\r' | sed -n 's/^cluster_slots_assigned://p')" != 0 ]; then
    for port in "${ports[@]}"; do redis-cli -p "$port" flushall >/dev/null; redis-cli -p "$port" cluster reset hard >/dev/null; done
  fi
  redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$STATE_DIR/redis-cluster/create.log" 2>&1 \
    || { say "redis-cli --cluster create failed; see $STATE_DIR/redis-cluster/create.log"; tail -20 "$STATE_DIR/redis-cluster/create.log" >&2; exit 1; }
  for _ in $(seq 100); do cluster_ok && break; sleep 0.1; done
  cluster_ok || { say "the Redis Cluster did not become ok: $(redis-cli -p "$CLUSTER_PORT" cluster info | head -1)"; exit 1; }
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
say "ready: Redis 127.0.0.1:$REDIS_PORT, InfluxDB http://127.0.0.1:$INFLUX_PORT$([ "$WITH_TEST_TOOLS" = 1 ] && echo ", Redis Cluster 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + 2))")"
