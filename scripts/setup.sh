#!/usr/bin/env bash
# Installs what is missing (restic and OpenSSH from Debian, a Python virtual environment with the
# package and its test tools) and nothing else. Safe to run again: it only adds what
# is not there yet. `--second-restic` (scripts/test.sh) also fetches the other Debian
# release's restic into tools/ (scripts/fetch-restic.sh) for the two-version test pass.
# `--with-rt` (scripts/test.sh) also installs Request Tracker 5 with its SQLite driver and
# standalone server, which the ticket connector's slow tests start (tests/rt_server.py).
set -euo pipefail
cd "$(dirname "$0")/.."

second_restic=no
with_rt=no
for arg in "$@"; do
  case $arg in
    --second-restic) second_restic=yes ;;
    --with-rt) with_rt=yes ;;
    *) echo "setup: unknown option $arg (known: --second-restic, --with-rt)" >&2
       exit 2 ;;
  esac
done

need_apt=()
command -v restic >/dev/null 2>&1 || need_apt+=(restic)
# The SFTP target tests start a real sshd on loopback and connect with ssh.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
# The packaging test checks the shipped unit with systemd-analyze.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# Database sources: their client tools (pg_dump, mariadb-dump) and sqlite3.
command -v pg_dump >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v mariadb-dump >/dev/null 2>&1 || need_apt+=(mariadb-client)
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need_apt[*]}: run this as root, or install them with apt-get" >&2
    exit 1
  fi
  echo "setup: installing ${need_apt[*]} from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Request Tracker: about 260 packages and 70 s, so only when asked for and missing. Its
# recommends (a web server, a mail server, a full database) are not needed: the tests run
# RT's own standalone server on an SQLite file.
if [ "$with_rt" = yes ]; then
  need_rt=()
  for pkg in request-tracker5 rt5-db-sqlite rt5-standalone; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need_rt+=("$pkg")
  done
  if [ ${#need_rt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup: missing ${need_rt[*]}: run this as root, or install them with apt-get" >&2
      exit 1
    fi
    echo "setup: installing ${need_rt[*]} from Debian's packages (about a minute)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_rt[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

if [ "$second_restic" = yes ]; then
  ./scripts/fetch-restic.sh >/dev/null
fi
