#!/usr/bin/env bash
# The client side's floor (issue 14): floor-client.c's participants through forwarder.c,
# both built here with the system C compiler (libsodium-dev needed). Prints floor-client's
# JSON: loss, latency, the client's and the forwarder's CPU, and the client's CPU per
# operation against the bare seal/open measured in the same run.
#
#   bash Benchmarks/ReferenceForwarder/floor.sh PARTICIPANTS [crypto|none] [SECONDS] [THREADS]
#
# Defaults: crypto, 8 s, 2 threads; rooms of 5 at 50 fps. Everything stays on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
participants=${1:?usage: floor.sh PARTICIPANTS [crypto|none] [SECONDS] [THREADS]}
mode=${2:-crypto}
seconds=${3:-8}
threads=${4:-2}
cc=${CC:-cc}
work=$(mktemp -d)
forwarder_pid=
cleanup() {
    if [ -n "$forwarder_pid" ]; then kill -TERM "$forwarder_pid" 2>/dev/null || true; wait "$forwarder_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
"$cc" -O2 -Wall -Wextra -Werror -o "$work/forwarder" "$here/forwarder.c"
"$cc" -O2 -Wall -Wextra -Werror -pthread -o "$work/floor-client" "$here/floor-client.c" -lsodium
mkfifo "$work/port"
"$work/forwarder" > "$work/port" &
forwarder_pid=$!
read -r word port < "$work/port"
[ "$word" = port ] || { echo "floor.sh: the forwarder did not report its port" >&2; exit 1; }
timeout $((seconds + 60)) "$work/floor-client" "$port" "$participants" 5 "$seconds" "$mode" "$threads" 50 "$forwarder_pid"
