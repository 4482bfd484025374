#!/usr/bin/env bash
# Per-step overhead of the Slurm executor (issue 20), side by side with its two peers:
#   local: 100 steps of `true`, each needing the one before, as local processes;
#   slurm: the same 100 steps as Slurm jobs (`[slurm] default = true`);
#   srun:  `srun true` 100 times in a row, straight to the cluster.
# Then the widest: 100 independent steps as Slurm jobs with engine.concurrency = 100
# (all submitted at once; the cluster runs as many as it has CPUs).
# Each figure is taken in PAIRS rounds, the three alternating, and medians compared.
# Needs a running cluster (scripts/slurm-test-cluster.sh). Never fails on time.
# Usage: [PD_BIN=path] [PAIRS=3] [STEPS=100] scripts/bench_slurm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PD_BIN:-}" ]; then BIN="$PD_BIN"; else
  cargo build --release --quiet
  BIN="$PWD/target/release/pipedeck"
fi
PAIRS="${PAIRS:-3}"
STEPS="${STEPS:-100}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
sinfo -h >/dev/null || { echo "no Slurm cluster answers: scripts/slurm-test-cluster.sh start" >&2; exit 1; }

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
per() { awk -v t="$1" -v n="$STEPS" 'BEGIN { printf "%.1f", t * 1000 / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# project DIR DEFAULT CONCURRENCY CHAINED
project() {
  mkdir -p "$1/src" && echo bench >"$1/src/README"
  {
    printf '[engine]\nconcurrency = %s\n\n[slurm]\ndefault = %s\npoll = "1s"\n\n' "$3" "$2"
    printf '[services.b]\nrepo_seed = "src"\n'
    for i in $(seq 1 "$STEPS"); do
      printf '[[services.b.steps]]\nname = "s%d"\nrun = "true"\n' "$i"
      if [ "$4" = 1 ] && [ "$i" -gt 1 ]; then printf 'needs = ["s%d"]\n' $((i - 1)); fi
    done
  } >"$1/pipedeck.toml"
}

# run DIR: seconds for one run of the service, checked to succeed
run() {
  local d="$1" data
  data=$(mktemp -d -p "$WORK")
  local t0 t1
  t0=$(now)
  "$BIN" --project "$d/pipedeck.toml" run b --wait --data-dir "$data" >/dev/null
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

srun_loop() {
  local t0 t1
  t0=$(now)
  for _ in $(seq 1 "$STEPS"); do srun --quiet -t 1 true; done
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

project "$WORK/local" false 4 1
project "$WORK/slurm" true 4 1
project "$WORK/wide" true 100 0
L=() S=() R=() W=()
for i in $(seq 1 "$PAIRS"); do
  L+=("$(run "$WORK/local")")
  S+=("$(run "$WORK/slurm")")
  R+=("$(srun_loop)")
  W+=("$(run "$WORK/wide")")
  echo "round $i: local ${L[-1]}s, slurm ${S[-1]}s, srun ${R[-1]}s, $STEPS wide on slurm ${W[-1]}s"
done
l=$(median "${L[@]}") s=$(median "${S[@]}") r=$(median "${R[@]}") w=$(median "${W[@]}")
echo "medians of $PAIRS ($STEPS chained steps of \`true\`):"
echo "  local executor: ${l}s ($(per "$l") ms a step)"
echo "  slurm executor: ${s}s ($(per "$s") ms a step): $(ratio "$s" "$l")x local, $(ratio "$s" "$r")x srun"
echo "  srun true:      ${r}s ($(per "$r") ms a step)"
echo "  $STEPS independent steps on slurm, all $STEPS in flight at once: ${w}s ($(per "$w") ms a step)"
