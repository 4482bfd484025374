#!/bin/sh
# Figures for issue 21 (months on an ops box), each beside its peer; see benches/ops.rs:
# dashboard start and runs-table frame time with 100,000 runs against 100, gc over
# 10,000 runs, backup throughput against `cp -r` + sync of the same data dir.
# ROUNDS (default 5) interleaved rounds; medians. On a shared machine the numbers are
# noisy: the load average at start and end is printed with them.
set -eu
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}" cargo bench --bench ops
