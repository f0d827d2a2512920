#!/bin/bash
# Runs inside the influxdb:2.x container once, right after its first setup (the image runs every
# *.sh in /docker-entrypoint-initdb.d with the influx CLI already logged in as the admin).
#
# Maps the InfluxQL database EXPEED_DBRP_DATABASE (retention policy "autogen") to the bucket the
# setup created, so Grafana's InfluxQL data source and any 1.x client can query it. Newer 2.x
# releases also offer a virtual mapping named after the bucket; an explicit one is what every
# 2.x release honours and what `influx v1 dbrp list` shows.
set -euo pipefail

db="${EXPEED_DBRP_DATABASE:-${DOCKER_INFLUXDB_INIT_BUCKET}}"
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:?the influxdb image did not export DOCKER_INFLUXDB_INIT_BUCKET_ID; is this running from /docker-entrypoint-initdb.d?}"
org="${DOCKER_INFLUXDB_INIT_ORG:?DOCKER_INFLUXDB_INIT_ORG is not set}"

# Idempotent: the script may run again on a re-created container with an existing volume.
if influx v1 dbrp list --org "$org" --db "$db" --hide-headers 2>/dev/null | grep -q "$bucket_id"; then
  echo "expeed dbrp: database \"$db\" already maps to bucket $bucket_id"
  exit 0
fi

influx v1 dbrp create \
  --org "$org" \
  --db "$db" \
  --rp autogen \
  --bucket-id "$bucket_id" \
  --default
echo "expeed dbrp: InfluxQL database \"$db\" (rp autogen) -> bucket ${DOCKER_INFLUXDB_INIT_BUCKET} ($bucket_id)"
