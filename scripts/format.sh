#!/usr/bin/env bash
# The formatting check of .ci/run (swift-format from the toolchain, .swift-format at the root).
#   bash scripts/format.sh          # check: lists every difference, fails if there is one
#   bash scripts/format.sh --fix    # rewrite the files in place
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(Sources Tests Benchmarks/Sources Benchmarks/Benchmarks Fuzz/Sources Package.swift Benchmarks/Package.swift Fuzz/Package.swift)
if [ "${1:-}" = "--fix" ]; then
  exec swift format --configuration .swift-format --in-place --recursive "${paths[@]}"
fi
swift format lint --configuration .swift-format --strict --recursive "${paths[@]}"
