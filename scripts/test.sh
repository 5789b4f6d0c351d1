#!/usr/bin/env bash
# The whole test suite, with lint and format checks; what .ci/run calls.
#
# Two passes, because machines run either Debian's restic: first every test with the
# restic on PATH (Debian 12: 0.14, Debian 13: 0.18), then the integration and e2e tiers
# again with the other release's restic (fetched by scripts/fetch-restic.sh into tools/).
# Arguments go to both pytest runs. TEST_WORKERS (default 2) sets pytest-xdist's workers.
# Any failure, and a pass that collected no test at all (pytest's exit 5), fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --second-restic --with-rt
second=$(./scripts/fetch-restic.sh)
.venv/bin/ruff check .
.venv/bin/ruff format --check .

workers=${TEST_WORKERS:-2}
failed=()

run_pass() {
  local name=$1
  shift
  local rc=0
  echo "test: pass '$name'" >&2
  "$@" || rc=$?
  case $rc in
    0) ;;
    5) echo "test: pass '$name' collected no tests (pytest exit 5): that is a failure" >&2
       failed+=("$name") ;;
    *) echo "test: pass '$name' failed (pytest exit $rc)" >&2
       failed+=("$name") ;;
  esac
}

system_restic=$(restic version | cut -d' ' -f2)
second_restic=$("$second" version | cut -d' ' -f2)
run_pass "all tiers, restic $system_restic" \
  env -u ORCHESTRATOR_TEST_RESTIC .venv/bin/python -m pytest -n "$workers" "$@"
run_pass "integration and e2e, restic $second_restic" \
  env ORCHESTRATOR_TEST_RESTIC="$second" \
  .venv/bin/python -m pytest -n "$workers" tests/integration tests/e2e "$@"

if [ ${#failed[@]} -gt 0 ]; then
  echo "test: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "test: every pass succeeded (restic $system_restic and $second_restic)" >&2
