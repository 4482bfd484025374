#!/usr/bin/env bash
# Overhead per stack job: the demo's six Terraform resources deployed by pipedeck vs a
# shell script running terraform init/plan/apply (and output) in dependency order with
# the same parallelism (two at a time, layer by layer). Usage: scripts/bench_tf.sh BIN
set -euo pipefail
BIN="$1"
TF=$(command -v terraform || command -v tofu || true)
if [ -z "$TF" ]; then echo "== terraform overhead: skipped (no terraform or tofu)"; exit 0; fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export TF_CLI_CONFIG_FILE="$W/empty.rc" TF_IN_AUTOMATION=1
: > "$TF_CLI_CONFIG_FILE"
M="$ROOT/assets/demo/infra/modules"
now() { date +%s.%N; }

# The peer: plain terraform, layer by layer.
deploy() { # id module vars-json
  # The module tree as it is (db's module calls local child modules).
  mkdir -p "$W/peer/$1"; cp -r "$M" "$W/peer/$1/m"; echo "$3" > "$W/peer/$1/m/$2/pipedeck.auto.tfvars.json"
  (cd "$W/peer/$1/m/$2" && "$TF" init -input=false >/dev/null && "$TF" plan -input=false -out=p.tfplan >/dev/null \
     && "$TF" apply -input=false p.tfplan >/dev/null && "$TF" output -json > "$W/peer/$1/out.json")
}
out() { python3 -c "import json,sys; print(json.load(open('$W/peer/$1/out.json'))['$2']['value'])"; }
t0=$(now)
deploy vpc vpc '{"cidr": "10.0.0.0/16"}'
VPC=$(out vpc id)
deploy subnet-public subnet "{\"vpc_id\": \"$VPC\", \"cidr\": \"10.0.1.0/24\", \"public\": true}" &
deploy subnet-private subnet "{\"vpc_id\": \"$VPC\", \"cidr\": \"10.0.2.0/24\", \"public\": false}" &
wait
deploy db db "{\"subnet_id\": \"$(out subnet-private id)\", \"engine\": \"postgres\"}" &
deploy lb lb "{\"subnet_id\": \"$(out subnet-public id)\"}" &
wait
deploy dns dns "{\"name\": \"app.staging.example.com\", \"target\": \"$(out lb id)\"}"
t1=$(now)
peer=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')

# pipedeck: the same modules and inputs, no gates or pauses, two at a time.
sed -e 's/^approval = true$/approval = false/' -e 's/^pause_before_apply = true$/pause_before_apply = false/' \
    -e 's/^concurrency = 4$/concurrency = 2/' "$ROOT/assets/demo/pipedeck.toml" > "$ROOT/assets/demo/.bench-tf.toml"
trap 'rm -rf "$W" "$ROOT/assets/demo/.bench-tf.toml"' EXIT
t0=$(now)
"$BIN" --project "$ROOT/assets/demo/.bench-tf.toml" --data-dir "$W/pd" infra run aws-staging --wait > "$W/pd.out"
t1=$(now)
pd=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
echo "== terraform overhead: the demo's six resources ($("$TF" version | head -n 1))"
tail -n 1 "$W/pd.out" | sed 's/^/  /'
echo "  shell script (init/plan/apply/output, same order and parallelism): ${peer}s   pipedeck: ${pd}s"
echo "  ratio: $(awk -v a="$pd" -v b="$peer" 'BEGIN { printf "%.2f", a / b }')   (target <= 1.05)"
