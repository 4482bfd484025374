#!/usr/bin/env bash
# A throwaway sshd for tests: loopback only, on PORT, with a host key, config, logs
# and per-user authorized keys (DIR/authorized_keys/USER) in DIR. Keys only; no PAM.
# Runs in the foreground (exec): the caller stops it by its pid.
# Usage: scripts/sshd-test.sh DIR PORT   (as root; sshd from Debian's openssh-server,
# which .ci/run installs)
set -euo pipefail
dir=$1
port=$2
sshd=/usr/sbin/sshd
[ -x "$sshd" ] || { echo "no $sshd: install openssh-server" >&2; exit 3; }
mkdir -p /run/sshd "$dir/authorized_keys"
[ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
cat > "$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys/%u
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowStreamLocalForwarding yes
PermitRootLogin no
LogLevel VERBOSE
CONF
exec "$sshd" -D -e -f "$dir/sshd_config"
