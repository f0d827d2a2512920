#!/usr/bin/env bash
# The main command: installs and starts what the service needs (see setup.sh), compiles the
# sources when dist/ is missing or stale (npm run build), then runs `expeed-sync run` with every
# role. Without EXPEED_PLATFORM_KEY/EXPEED_SECRET_KEY it runs against the built-in platform
# simulator (demo mode). Extra arguments go to `expeed-sync run`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${EXPEED_PLATFORM_KEY:-}" ]; then
  echo "run: no platform credentials set: demo mode against the built-in simulator; installing what is missing first" >&2
  # the first sync's progress stays readable; LOG_LEVEL=info shows every log line
  export LOG_LEVEL="${LOG_LEVEL:-warn}"
fi
bash scripts/setup.sh
# the compiled code runs with less CPU and memory than the sources through tsx; built when stale
node bin/build.js --check 2>/dev/null || node bin/build.js
exec node bin/expeed-sync.js run "$@"
