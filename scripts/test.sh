#!/usr/bin/env bash
# The test command: installs and starts what the tests need (see setup.sh), then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST_TOOLS=1 bash scripts/setup.sh
npx tsc --noEmit
npx vitest run "$@"
