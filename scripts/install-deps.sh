#!/usr/bin/env bash
# Installs the system packages Conclave needs, only when they are missing.
# Used by the README's commands and by .ci/run (gdb: its gcore dumps the relay's memory in a test;
# python3: scripts/fuzz.sh seeds its corpora from the test vectors; redis-server: the Redis
# client's and the cluster's tests start their own servers on loopback ports; gcc: `conclave bench
# relay --baseline` and its test build the C reference forwarder with `cc`).
# Needs root (or sudo) on Debian/Ubuntu.
set -euo pipefail
need=()
for pkg in libsodium-dev libopus-dev pkg-config openssl gdb python3 redis-server gcc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  echo "installing: ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
