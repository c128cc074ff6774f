#!/usr/bin/env bash
# A live local demo meeting on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product conclave >/dev/null
exec .build/release/conclave demo "$@"
