#!/usr/bin/env bash
# The main job on the bundled policies.toml: validate it, back up every policy to
# the local target, then show what the repository holds and the status table.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
orc=.venv/bin/orchestrator
export ORCHESTRATOR_CONFIG="$PWD/policies.toml"

# First run only: create the local repository's password. Without it the backups
# cannot be read, so keep a copy of var/secrets/repo-local somewhere safe.
if ! $orc secrets list | grep -qx repo-local && [ -z "${ORCHESTRATOR_SECRET_REPO_LOCAL:-}" ]; then
  $orc secrets set repo-local --generate
  echo "run-main: generated the password of the local repository in var/secrets/repo-local: keep a copy off this machine" >&2
fi
$orc validate
$orc backup --all
$orc snapshots
$orc status
