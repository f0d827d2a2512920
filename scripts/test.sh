#!/usr/bin/env bash
# The test command: installs and starts what the tests need (see setup.sh), then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST_TOOLS=1 bash scripts/setup.sh
npx tsc --noEmit
# one style through the tree: Prettier's (.prettierrc); `npm run format` fixes what this names
npx prettier --check . >/dev/null || { npx prettier --list-different .; echo 'format: the files above are not formatted (npm run format)'; exit 1; }
report="$(mktemp -t expeed-vitest-XXXXXX.json)"
rc=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || rc=$?
# one plain closing line for whoever reads the log: "tests: N passed, N failed, N skipped"
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ""}`);
' "$report" || true
rm -f "$report"
exit "$rc"
