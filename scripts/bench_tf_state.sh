#!/usr/bin/env bash
# Issue 22's figures: the demo's six Terraform resources (db's module calls local child
# modules) deployed by pipedeck vs plain terraform in the same order and parallelism
# (two at a time, layer by layer: init, plan -out, apply of that plan, output -json),
# with local state and with state in PostgreSQL (the pg backend, a workspace per
# resource). Median of ROUNDS interleaved rounds, each from empty states.
# Usage: scripts/bench_tf_state.sh BIN [ROUNDS]   (BIN: a release build of pipedeck)
set -euo pipefail
BIN="$(realpath "$1")"
ROUNDS="${2:-5}"
TF=$(command -v terraform || command -v tofu || true)
if [ -z "$TF" ]; then echo "== terraform state backends: skipped (no terraform or tofu)"; exit 0; fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W=$(mktemp -d)
PG_PORT=55439
cleanup() { rm -rf "$W" "$ROOT/assets/demo/.bench-tf-"*.toml; "$ROOT/scripts/pg-test-server.sh" stop "$PG_PORT"; }
trap cleanup EXIT
export PIPEDECK_BENCH_PG
PIPEDECK_BENCH_PG="$("$ROOT/scripts/pg-test-server.sh" start "$PG_PORT")"
export TF_CLI_CONFIG_FILE="$W/empty.rc" TF_IN_AUTOMATION=1
: > "$TF_CLI_CONFIG_FILE"
M="$ROOT/assets/demo/infra/modules"
now() { date +%s.%N; }

# The peer: plain terraform, layer by layer. $BACKEND: local or pg; $SCHEMA for pg.
deploy() { # id module vars-json
  local d="$W/peer-$ROUND-$BACKEND/$1"
  mkdir -p "$d"; cp -r "$M" "$d/m"; echo "$3" > "$d/m/$2/pipedeck.auto.tfvars.json"
  (
    cd "$d/m/$2"
    export TF_DATA_DIR="$d/.terraform"
    if [ "$BACKEND" = pg ]; then
      printf 'terraform {\n  backend "pg" {}\n}\n' > backend_override.tf
      "$TF" init -input=false -backend-config="conn_str=$PIPEDECK_BENCH_PG" -backend-config="schema_name=$SCHEMA" >/dev/null
      "$TF" workspace select "aws-staging.$1" >/dev/null 2>&1 || "$TF" workspace new -lock-timeout=5s "aws-staging.$1" >/dev/null
      lock="-lock-timeout=5s"   # as pipedeck does for pg (see the README)
    else
      "$TF" init -input=false >/dev/null
      lock=""
    fi
    "$TF" plan -input=false $lock -out="$d/p.tfplan" >/dev/null
    "$TF" apply -input=false $lock "$d/p.tfplan" >/dev/null
    "$TF" output -json > "$d/out.json"
  )
}
out() { python3 -c "import json,sys; print(json.load(open('$W/peer-$ROUND-$BACKEND/$1/out.json'))['$2']['value'])"; }
peer() {
  deploy vpc vpc '{"cidr": "10.0.0.0/16"}'
  local vpc; vpc=$(out vpc id)
  deploy subnet-public subnet "{\"vpc_id\": \"$vpc\", \"cidr\": \"10.0.1.0/24\", \"public\": true}" &
  deploy subnet-private subnet "{\"vpc_id\": \"$vpc\", \"cidr\": \"10.0.2.0/24\", \"public\": false}" &
  wait
  deploy db db "{\"subnet_id\": \"$(out subnet-private id)\", \"engine\": \"postgres\"}" &
  deploy lb lb "{\"subnet_id\": \"$(out subnet-public id)\"}" &
  wait
  deploy dns dns "{\"name\": \"app.staging.example.com\", \"target\": \"$(out lb id)\"}"
}

# pipedeck: the same modules and inputs, no gates or pauses, two at a time.
project() { # backend schema -> project file
  local f="$ROOT/assets/demo/.bench-tf-$1-$2.toml"
  sed -e 's/^approval = true$/approval = false/' -e 's/^pause_before_apply = true$/pause_before_apply = false/' \
      -e 's/^concurrency = 4$/concurrency = 2/' "$ROOT/assets/demo/pipedeck.toml" > "$f"
  if [ "$1" = pg ]; then
    sed -i "s/^driver = \"terraform\"$/driver = \"terraform\"\nbackend = { type = \"pg\", config = { schema_name = \"$2\" }, secrets = { conn_str = { env = \"PIPEDECK_BENCH_PG\" } } }/" "$f"
  fi
  echo "$f"
}
pipedeck() {
  local f; f=$(project "$BACKEND" "$SCHEMA")
  "$BIN" --project "$f" --data-dir "$W/pd-$ROUND-$BACKEND" infra run aws-staging --wait > "$W/pd.out" \
    || { tail -n 5 "$W/pd.out" >&2; for op in init refresh preview apply; do
           "$BIN" --project "$f" --data-dir "$W/pd-$ROUND-$BACKEND" logs 1 --step "operation/db.$op" >&2 || true; done; exit 1; }
}
timed() { local t0 t1; t0=$(now); "$@"; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A T
for ROUND in $(seq 1 "$ROUNDS"); do
  for BACKEND in local pg; do
    SCHEMA="peer_${ROUND}"
    T[peer-$BACKEND]+="$(timed peer) "
    SCHEMA="pd_${ROUND}"
    T[pd-$BACKEND]+="$(timed pipedeck) "
  done
done
echo "== terraform state backends: the demo's six resources, $ROUNDS interleaved rounds ($("$TF" version | head -n 1))"
for BACKEND in local pg; do
  p=$(echo ${T[peer-$BACKEND]} | tr ' ' '\n' | median)
  d=$(echo ${T[pd-$BACKEND]} | tr ' ' '\n' | median)
  echo "  $BACKEND state: plain terraform ${p}s   pipedeck ${d}s   ratio $(awk -v a="$d" -v b="$p" 'BEGIN { printf "%.2f", a / b }')"
done
