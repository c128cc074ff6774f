#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ with -sanitize=fuzzer,address and runs each for
# SECONDS (default 60), its corpus seeded from protocol/test-vectors/. A crash leaves its
# input in .build-fuzz/crashes/<target>/ and makes this script fail.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"; shift || true
root="$PWD"
scratch="$root/.build-fuzz"
swift build --package-path Fuzz --scratch-path "$scratch" -c release \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld
bin="$(swift build --package-path Fuzz --scratch-path "$scratch" -c release --show-bin-path)"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(ClientMessage RelayMessage FrameHeader SFrameHeader ControlMessage KeyPackage KeyWrap Knock MediaDatagram Invite WAV RelayConfig RESP)
fi
# Seeds: every hex "encoded" value of the test vectors (and the invites) goes to every corpus.
seeds="$scratch/seeds"
rm -rf "$seeds"; mkdir -p "$seeds"
python3 - "$root/protocol/test-vectors" "$seeds" <<'PY'
import json, os, sys, hashlib
src, out = sys.argv[1], sys.argv[2]
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if isinstance(v, str) and (k.endswith("encoded") or k in ("message", "payload", "plaintext", "datagram", "sealed")):
                try: yield bytes.fromhex(v)
                except ValueError:
                    if k == "invite" or v.startswith("conclave"): yield v.encode()
            elif isinstance(v, str) and k == "invite": yield v.encode()
            else: yield from walk(v)
    elif isinstance(o, list):
        for v in o: yield from walk(v)
n = 0
for name in sorted(os.listdir(src)):
    if not name.endswith(".json"): continue
    for b in walk(json.load(open(os.path.join(src, name)))):
        if not b: continue
        open(os.path.join(out, hashlib.sha1(b).hexdigest()), "wb").write(b); n += 1
# A few WAV files: 16-bit PCM, mono and stereo, 8 and 48 kHz.
import struct
for rate, ch, frames in ((8000, 1, 4), (48000, 2, 3), (48000, 1, 0)):
    data = struct.pack("<" + "h" * (frames * ch), *range(frames * ch))
    fmt = struct.pack("<HHIIHH", 1, ch, rate, rate * ch * 2, ch * 2, 16)
    wav = b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    open(os.path.join(out, hashlib.sha1(wav).hexdigest()), "wb").write(wav); n += 1
# Relay config files: a typical one, every kind of value, and the escapes the parser knows.
for cfg in ('{"listen": "127.0.0.1:7443", "max-rooms": 10, "allow-plaintext": false}',
            '{\n  "media-listen": "off", "log-level": "debug", "tls-cert": null,\n  "exempt-addresses": "127.0.0.1,::1"\n}',
            '{"listen": "[::1]:9000", "media-listen": "[::1]:9001", "tls-cert": "a\\"b\\\\c\\/d\\n\\t", "tls-key": "k.pem"}',
            '{}'):
    b = cfg.encode()
    open(os.path.join(out, hashlib.sha1(b).hexdigest()), "wb").write(b); n += 1
# Redis replies (RESP2 and RESP3).
for resp in (b"+OK\r\n", b"-ERR x\r\n:42\r\n", b"$3\r\nabc\r\n$-1\r\n*-1\r\n", b"*2\r\n$7\r\nmessage\r\n:1\r\n",
             b"%1\r\n+k\r\n~2\r\n#t\r\n,1.5\r\n", b">3\r\n+message\r\n+ch\r\n=8\r\ntxt:abcd\r\n",
             b"|1\r\n+a\r\n_\r\n(123\r\n", b"!5\r\nERR x\r\n"):
    open(os.path.join(out, hashlib.sha1(resp).hexdigest()), "wb").write(resp); n += 1
print(f"{n} seeds", file=sys.stderr)
PY
status=0
for t in "${targets[@]}"; do
    corpus="$scratch/corpus/$t"; crashes="$scratch/crashes/$t"
    mkdir -p "$corpus" "$crashes"
    cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
    echo "== Fuzz$t for ${seconds}s"
    log="$scratch/fuzz-$t.log"
    # Swift's own crash handler would get in libFuzzer's way: libFuzzer reports traps.
    rc=0
    SWIFT_BACKTRACE=enable=no "$bin/Fuzz$t" "$corpus" -max_total_time="$seconds" -max_len=70000 \
        -artifact_prefix="$crashes/" -print_final_stats=1 > "$log" 2>&1 || rc=$?
    grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|ERROR|SUMMARY|Fatal error|precondition|Test unit written" "$log" || true
    if [ "$rc" -ne 0 ] || ls "$crashes"/crash-* "$crashes"/leak-* "$crashes"/timeout-* >/dev/null 2>&1; then
        echo "!! Fuzz$t failed (exit $rc); inputs in $crashes, log in $log"; status=1
    fi
done
exit $status
