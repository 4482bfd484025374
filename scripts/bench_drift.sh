#!/usr/bin/env bash
# Time of a drift check over the demo's infra pipeline (six Terraform resources):
# `pipedeck infra drift aws-staging` vs plain terraform doing the same (init, then
# `plan -detailed-exitcode -refresh=true -lock=false` in each resource's module copy, all
# six at once, as pipedeck does), interleaved, median of ROUNDS (default 5).
# Usage: scripts/bench_drift.sh BIN [ROUNDS]
set -euo pipefail
BIN="$1"
ROUNDS="${2:-5}"
TF=$(command -v terraform || command -v tofu || true)
if [ -z "$TF" ]; then echo "== drift check: skipped (no terraform or tofu)"; exit 0; fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W=$(mktemp -d)
CFG="$ROOT/assets/demo/.bench-drift.toml"
trap 'rm -rf "$W" "$CFG"' EXIT
now() { date +%s.%N; }
# The demo deployed without its gates and pauses.
sed -e 's/^approval = true$/approval = false/' -e 's/^pause_before_apply = true$/pause_before_apply = false/' \
    "$ROOT/assets/demo/pipedeck.toml" > "$CFG"
"$BIN" --project "$CFG" --data-dir "$W/pd" infra run aws-staging --wait > /dev/null
# `infra drift` asks a running engine.
"$BIN" --project "$CFG" --data-dir "$W/pd" serve > "$W/serve.log" 2>&1 &
SERVE=$!
trap 'kill "$SERVE" 2>/dev/null; wait "$SERVE" 2>/dev/null; rm -rf "$W" "$CFG"' EXIT
for _ in $(seq 100); do [ -S "$W/pd/engine.sock" ] && break; sleep 0.1; done
export TF_CLI_CONFIG_FILE="$W/pd/terraform.rc" TF_IN_AUTOMATION=1 TF_INPUT=0
peer_once() {
  local pids=()
  for d in "$W"/pd/infra/aws-staging/*/; do
    (
      work=$(dirname "$(find "$d/tree" -name pipedeck.auto.tfvars.json | head -n 1)")
      cd "$work"
      export TF_DATA_DIR="$d/.terraform"
      "$TF" init -input=false -backend-config="$d/pipedeck.tfbackend" > /dev/null
      rc=0; "$TF" plan -detailed-exitcode -refresh=true -input=false -lock=false -out="$d/peer.tfplan" > /dev/null || rc=$?
      rm -f "$d/peer.tfplan"
      [ "$rc" -eq 0 ] || { echo "peer: $d drifted or failed ($rc)" >&2; exit 1; }
    ) &
    pids+=("$!")
  done
  wait "${pids[@]}"
}
pd=(); peer=()
for _ in $(seq "$ROUNDS"); do
  t0=$(now); "$BIN" --project "$CFG" --data-dir "$W/pd" infra drift aws-staging > "$W/drift.out"; t1=$(now)
  pd+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
  t0=$(now); peer_once; t1=$(now)
  peer+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mp=$(median "${pd[@]}"); mq=$(median "${peer[@]}")
echo "== drift check over the demo's infra pipeline ($("$TF" version | head -n 1)), median of $ROUNDS"
sed 's/^/  /' "$W/drift.out"
echo "  plain terraform (init + plan -detailed-exitcode, all six at once): ${mq}s   pipedeck infra drift: ${mp}s"
echo "  ratio: $(awk -v a="$mp" -v b="$mq" 'BEGIN { printf "%.2f", a / b }')"
