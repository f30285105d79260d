#!/usr/bin/env bash
# Quick start, part 1: install packages, build, and run the cross-cluster mTLS demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec bash demo/run.sh
