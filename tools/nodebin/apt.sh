#!/usr/bin/env bash
# Installs the Debian packages in debian-packages.txt that are not installed yet. Does nothing
# (and needs neither root nor the network) when all of them are.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
list="$here/debian-packages.txt"

missing=()
while read -r package; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$package")
  fi
done < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$list")

if [ "${#missing[@]}" -eq 0 ]; then
  echo "Debian packages: all $(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | wc -l) of $list installed" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: Debian packages missing (${missing[*]}); run tools/nodebin/apt.sh as root" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Wait for the dpkg lock rather than fail when another install runs.
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
