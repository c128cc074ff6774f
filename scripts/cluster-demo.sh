#!/usr/bin/env bash
# A cluster of three relays on one Redis (all on loopback): a meeting of two runs, the node
# serving it is killed with SIGKILL, and the meeting continues on another node.
#   bash scripts/cluster-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --product conclave >/dev/null
swift build --product conclave-relay >/dev/null
bin="$(swift build --show-bin-path)"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
waitport() { # PORT: up to 20 s
    for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
    echo "nothing listens on $1" >&2; return 1
}
waitfor() { # FILE PATTERN SECONDS: until a line of FILE matches
    for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for $2 in $1" >&2; return 1
}

redis_port="$(freeport)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
waitport "$redis_port"
head -c 32 /dev/urandom >"$work/cluster.key"
echo "== Redis on 127.0.0.1:$redis_port; three relay nodes:"
ports=()
for n in 1 2 3; do
    p="$(freeport)"; ports+=("$p")
    "$bin/conclave-relay" --listen "127.0.0.1:$p" --cluster "redis://127.0.0.1:$redis_port" --node-id "node$n" \
        --cluster-key-file "$work/cluster.key" --log-level warning \
        --set cluster-node-timeout-seconds=2 --set exempt-addresses=127.0.0.1 >"$work/node$n.log" 2>&1 &
    pids+=($!)
    echo "   node$n  ws://127.0.0.1:$p  (pid $!)"
done
for p in "${ports[@]}"; do waitport "$p"; done
fallbacks=(--fallback-relay "ws://127.0.0.1:${ports[1]}" --fallback-relay "ws://127.0.0.1:${ports[2]}")

echo "== A host creates a room through node1; a guest joins with the invite"
"$bin/conclave" host --relay "ws://127.0.0.1:${ports[0]}" --name Host --auto-admit --send-audio tone:440 --unmute \
    --json --duration 16 "${fallbacks[@]}" >"$work/host.jsonl" 2>"$work/host.err" &
pids+=($!); host_pid=$!
waitfor "$work/host.jsonl" '"invite"' 20
invite="$(python3 -c 'import json,sys; print(next(json.loads(l)["invite"] for l in open(sys.argv[1]) if "\"invite\"" in l))' "$work/host.jsonl")"
"$bin/conclave" join "$invite" --name Guest --send-audio tone:550 --unmute --json --duration 14 "${fallbacks[@]}" \
    >"$work/guest.jsonl" 2>"$work/guest.err" &
pids+=($!); guest_pid=$!
waitfor "$work/guest.jsonl" '"epoch"' 20
waitfor "$work/guest.jsonl" '"audio"' 10
room_key="$(redis-cli -p "$redis_port" --scan --pattern 'conclave:room:*' | head -1)"
owner="$(redis-cli -p "$redis_port" get "$room_key")"
echo "   the room is served by $owner (Redis knows it only as $room_key)"
code() { python3 -c 'import json,sys; c=[json.loads(l)["security_code"] for l in open(sys.argv[1]) if "\"epoch\"" in l]; print(c[-1] if c else "none")' "$1"; }
echo "   security codes: host $(code "$work/host.jsonl") | guest $(code "$work/guest.jsonl")"

n="${owner#node}"
victim="${pids[$n]}"
echo "== kill -9 $owner (pid $victim)"
killed_at="$(date +%s.%N)"
kill -9 "$victim"
{ wait "$victim"; } 2>/dev/null || true
waitfor "$work/host.jsonl" '"rehomed"' 25
waitfor "$work/guest.jsonl" '"rehomed"' 25
back_at="$(date +%s.%N)"
sleep 2
new_owner="$(redis-cli -p "$redis_port" get "$room_key")"
ms() { python3 -c 'import json,sys; print([json.loads(l)["ms"] for l in open(sys.argv[1]) if "\"rehomed\"" in l][-1])' "$1"; }
echo "   back in the room after: host $(ms "$work/host.jsonl") ms, guest $(ms "$work/guest.jsonl") ms (kill to both back: $(python3 -c "print(round(($back_at-$killed_at)*1000))") ms)"
echo "   the room is now served by $new_owner"
echo "   security codes: host $(code "$work/host.jsonl") | guest $(code "$work/guest.jsonl")"
wait "$host_pid" || true
wait "$guest_pid" || true
python3 - "$work/host.jsonl" "$work/guest.jsonl" <<'PY'
import json, sys
for name, path in (("host", sys.argv[1]), ("guest", sys.argv[2])):
    audio = [json.loads(l) for l in open(path) if '"audio"' in l]
    last = audio[-1] if audio else {}
    print(f"   {name}: {last.get('frames', 0)} audio frames decrypted from the other side in all, "
          f"{last.get('decrypt_failed', 0)} failed to decrypt")
PY
echo "== the meeting survived the loss of its node"
