#!/usr/bin/env bash
# A one-node Slurm cluster on this (Debian) machine, for pipedeck's Slurm executor:
# its tests, `.ci/run`, and anyone who wants to try `executor = "slurm"` without a
# cluster of their own.
#
#   scripts/slurm-test-cluster.sh start    install (apt, once), configure, start, wait
#                                           until `srun true` answers (the default)
#   scripts/slurm-test-cluster.sh stop     stop the daemons it started
#   scripts/slurm-test-cluster.sh status   exit 0 when `srun true` answers
#
# Idempotent: `start` on a running cluster only checks it. Runs as root (it installs
# packages and starts daemons). It writes /etc/slurm/slurm.conf, marked as its own,
# and refuses to overwrite one it did not write. State, spool and logs go under
# $PIPEDECK_SLURM_DIR (default /var/lib/pipedeck-slurm-test).
set -euo pipefail

DIR="${PIPEDECK_SLURM_DIR:-/var/lib/pipedeck-slurm-test}"
CONF=/etc/slurm/slurm.conf
MARK="# written by pipedeck scripts/slurm-test-cluster.sh"
PARTITION=debug

say() { echo "slurm-test-cluster: $*" >&2; }
die() {
  say "$*"
  exit 1
}

healthy() {
  timeout 20 srun --quiet -p "$PARTITION" -t 1 true >/dev/null 2>&1
}

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v sbatch >/dev/null; then
    return
  fi
  [ "$(id -u)" = 0 ] || die "installing slurm-wlm and munge needs root"
  say "installing slurm-wlm and munge (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
}

configure() {
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: point pipedeck at that cluster instead (README, \"Running steps on a Slurm cluster\")"
  fi
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" /etc/slurm
  local node host
  # The node as slurmd sees it: its real CPUs, sockets, cores and memory.
  node="$(slurmd -C | head -n 1)"
  host="$(hostname -s)"
  local tmp
  tmp="$(mktemp)"
  cat >"$tmp" <<EOF
$MARK
ClusterName=pipedeck-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A job that asks for no memory gets this much a CPU (not the whole node).
DefMemPerCPU=512
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Ended jobs stay visible to scontrol for 10 minutes (there is no accounting database).
MinJobAge=600
# Between scancel's SIGTERM (or a time limit) and SIGKILL.
KillWait=5
SchedulerParameters=sched_interval=2
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  # The node line as slurmd -C prints it names the node by its hostname.
  if ! cmp -s "$tmp" "$CONF"; then
    mv "$tmp" "$CONF"
    chmod 644 "$CONF"
    CHANGED=1
  else
    rm -f "$tmp"
  fi
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  if pgrep -x munged >/dev/null; then
    return
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- munged
}

start_daemons() {
  if [ "${CHANGED:-0}" = 1 ]; then
    # A new configuration: daemons from an older one are restarted.
    stop_daemons
  fi
  # Idempotent: daemons already running with this configuration are kept.
  pid_alive "$DIR/slurmctld.pid" || slurmctld
  pid_alive "$DIR/slurmd.pid" || slurmd
}

stop_daemons() {
  local f
  for f in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
    if pid_alive "$f"; then
      local p
      p="$(cat "$f")"
      kill "$p" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
      done
    fi
  done
}

wait_healthy() {
  local deadline=$((SECONDS + 60))
  while ! healthy; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "the cluster did not answer \`srun true\` within 60s; logs: $DIR/log/"
      tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
      exit 1
    fi
    # A node that came up DOWN (an earlier unclean stop) is put back.
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
}

case "${1:-start}" in
  start)
    install
    configure
    start_munge
    start_daemons
    wait_healthy
    say "running: partition $PARTITION, $(sinfo -h -o '%c CPUs, %m MB' | head -n 1); logs in $DIR/log"
    ;;
  stop)
    stop_daemons
    say "stopped slurmctld and slurmd (munged is left running)"
    ;;
  status)
    healthy
    ;;
  *)
    die "usage: $0 [start|stop|status]"
    ;;
esac
