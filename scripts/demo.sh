#!/usr/bin/env bash
# A live local demo meeting on the embedded defaults.
# It builds in the debug configuration, the one the tests use: running this and then
# scripts/test.sh compiles the dependencies once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --product conclave-relay >/dev/null
swift build --product conclave >/dev/null
exec .build/debug/conclave demo "$@"
