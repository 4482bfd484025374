#!/bin/sh
# Issue 18 figures: storing a 1 GiB artifact vs `sha256sum` + `cp` of the same file
# (interleaved, median of RUNS), and fan-out of one release to 100 stations (time,
# peak memory). The machine is shared: run it on a quiet one for numbers to compare.
# ARTIFACT_MB, RUNS, STATIONS and BENCH_DIR (where the files go) may be set.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench artifact
