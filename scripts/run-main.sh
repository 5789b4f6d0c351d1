#!/usr/bin/env bash
# The main job on the bundled policies.toml: validate it, back up every policy to
# the local target, then show what the repository holds and the status table.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
orc=.venv/bin/orchestrator
export ORCHESTRATOR_CONFIG="$PWD/policies.toml"

# Plain secret files of an earlier version (var/secrets/NAME) are sealed first.
if [ -d var/secrets ]; then
  $orc secrets migrate
fi
# First run only: create the local repository's password, sealed in var/secrets.sealed.
# The first `secrets set` also creates the store's key file (it says where): without it
# the password, and so the backups, cannot be read: keep a copy off this machine.
if [ -z "${ORCHESTRATOR_SECRET_REPO_LOCAL:-}" ] && ! $orc secrets list | grep -qx repo-local; then
  $orc secrets set repo-local --generate
  echo "run-main: generated the password of the local repository, sealed in var/secrets.sealed" >&2
fi
# First run only: the audit log's signing key (sealed in the same store); its public key
# is printed for the auditors.
if [ ! -f var/audit/audit-key.pub ]; then
  $orc audit init
fi
$orc validate
$orc backup --all
$orc snapshots
$orc status
