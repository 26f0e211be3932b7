#!/usr/bin/env bash
# Debian packages the test suites use, installed idempotently (root only):
# Chromium for browser journeys, PostgreSQL for the scale-out database tests,
# the network tools the data-plane suites drive, and the office services the
# browser apps reach (OpenSSH; TigerVNC's Xvnc and xsetroot for a VNC screen),
# and systemd-nspawn, which boots a systemd for the gateway's install test.
set -euo pipefail
PKGS=(chromium postgresql wireguard-go wireguard-tools iproute2 nftables openssh-server iperf3 iputils-ping tigervnc-standalone-server x11-xserver-utils systemd-container)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup-system: missing ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "setup-system: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
# The tests start their own throw-away PostgreSQL servers; Debian's default
# cluster is not needed and stays stopped.
