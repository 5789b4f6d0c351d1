#!/usr/bin/env bash
# Fetches the *other* Debian release's restic for the tests, so that the integration
# tier runs on both restic 0.14 (Debian 12, bookworm) and 0.18 (Debian 13, trixie)
# whichever of the two this machine is. restic is one static binary, so the package
# of either release runs on both.
#
# Nothing of the machine's apt configuration is touched: a private apt directory
# under tools/apt holds the source list, the package lists and the downloaded .deb;
# the binary is unpacked with dpkg-deb into tools/restic-<version>/restic.
# Prints the binary's path. Fast when it is already there (no network at all).
set -euo pipefail
cd "$(dirname "$0")/.."

system_version=$(restic version 2>/dev/null | sed -n 's/^restic \([0-9]*\.[0-9]*\).*/\1/p')
case "$system_version" in
  0.1[7-9]* | 0.[2-9]* | [1-9]*) suite=bookworm ;;  # Debian 13 (or newer): fetch 0.14
  *) suite=trixie ;;                                 # Debian 12 (0.14) or none: fetch 0.18
esac

tools=tools
# tools/.suite-<suite> names the binary fetched before.
if [ -f "$tools/.suite-$suite" ] && [ -x "$(cat "$tools/.suite-$suite")" ]; then
  echo "$PWD/$(cat "$tools/.suite-$suite")"
  exit 0
fi

# The mirror the machine's own sources name (deb822 .sources or one-line sources.list),
# never the security archive; deb.debian.org when none is found.
mirror=$(
  {
    grep -hsE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
    grep -hsE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed -E 's/\[[^]]*\]//' | awk '{print $2}'
  } | grep -E "/debian/?$" | grep -v security | head -n1 || true
)
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}

apt_dir=$PWD/$tools/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/cache"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror $suite main" >"$apt_dir/sources.list"
apt_opts=(
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
  -o Dir::Etc::sourceparts=/nonexistent
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Cache::Archives=$apt_dir/archives"
  -o APT::Get::List-Cleanup=0
  -o "APT::Sandbox::User=$(id -un)"
)
echo "fetch-restic: downloading restic from Debian $suite ($mirror)" >&2
apt-get "${apt_opts[@]}" -qq update >&2
(cd "$apt_dir/archives" && apt-get "${apt_opts[@]}" -qq download restic >&2)
deb=$(ls -t "$apt_dir"/archives/restic_*.deb | head -n1)
unpacked=$(mktemp -d "$apt_dir/unpack.XXXXXX")
dpkg-deb -x "$deb" "$unpacked"
version=$("$unpacked/usr/bin/restic" version | sed -n 's/^restic \([0-9.]*\).*/\1/p')
[ -n "$version" ] || { echo "fetch-restic: the downloaded restic does not run" >&2; exit 1; }
dest=$tools/restic-$version
mkdir -p "$dest"
install -m 0755 "$unpacked/usr/bin/restic" "$dest/restic"
rm -rf "$unpacked" "$deb"
echo "$dest/restic" >"$tools/.suite-$suite"
echo "$PWD/$dest/restic"
