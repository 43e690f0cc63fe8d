#!/usr/bin/env bash
# The benchmark command: builds, generates the workloads (deterministic, seed 1 unless
# --seed is given), runs every scenario interleaved with the minimal loader, then the
# daemon latency / idle CPU measurement. Prints tables; asserts nothing.
#   bench/run.sh [--runs 3] [--seed 1] [--quick] [--keep]   (--keep: leave target/bench-work/runs for profiling)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --examples
target/release/cpis-bench "$@"
echo
python3 bench/daemon_latency.py
