#!/usr/bin/env bash
# CI: builds the .deb (scripts/package.sh), installs it into this machine with
# `dpkg -i` (as root), and checks the installed files work: `pipedeck --version`,
# `pipedeck --demo validate`, a man page, the completion scripts, `pipedeck init`
# pointing editors at the installed schema, the systemd unit. Reports the size.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "error: package-check installs the package with dpkg -i and must run as root" >&2
  exit 1
fi

deb="$(scripts/package.sh | tail -n 1)"
dpkg -i "$deb"

bin=/usr/bin/pipedeck
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export PIPEDECK_CONFIG="$tmp/no-user-config.toml"

"$bin" --version
"$bin" --data-dir "$tmp/data" --demo validate

# Man pages where man finds them.
for page in pipedeck pipedeck-approve pipedeck-infra-run; do
  test -f "/usr/share/man/man1/$page.1.gz" || { echo "error: no man page $page" >&2; exit 1; }
done
if command -v man >/dev/null; then
  MANPAGER=cat man pipedeck-approve 2>/dev/null | grep -q "Approve the gate" \
    || { echo "error: man pipedeck-approve does not show the page" >&2; exit 1; }
fi

# The bash script registers the completion and calls back the installed binary.
bash -c 'source /usr/share/bash-completion/completions/pipedeck && complete -p pipedeck' | grep -q _clap_complete_pipedeck
words="$(PIPEDECK_COMPLETE=bash _CLAP_COMPLETE_INDEX=1 _CLAP_IFS=' ' "$bin" -- pipedeck appr)"
[ "$words" = "approve" ] || { echo "error: completing 'appr' gave '$words'" >&2; exit 1; }
test -s /usr/share/zsh/vendor-completions/_pipedeck
test -s /usr/share/fish/vendor_completions.d/pipedeck.fish

# init in a fresh repository points editors at the installed schema, and validates.
git init -q -b main "$tmp/repo"
printf 'build:\n\ttrue\n' >"$tmp/repo/Makefile"
(cd "$tmp/repo" && "$bin" init && "$bin" validate)
head -n 1 "$tmp/repo/pipedeck.toml" | grep -qx '#:schema file:///usr/share/pipedeck/pipedeck.schema.json'
cmp /usr/share/pipedeck/pipedeck.schema.json <("$bin" schema)

test -f /usr/lib/systemd/system/pipedeck.service
if command -v systemd-analyze >/dev/null; then
  # Offline: unknown keys or values, and an ExecStart that is not executable, fail it.
  out="$(systemd-analyze verify /usr/lib/systemd/system/pipedeck.service 2>&1)" \
    || { echo "error: the systemd unit does not verify: $out" >&2; exit 1; }
  [ -z "$out" ] || { echo "error: systemd-analyze verify warns: $out" >&2; exit 1; }
fi

size="$(stat -c %s "$deb")"
installed="$(dpkg-query -W -f='${Installed-Size}' pipedeck)"
echo "package: $deb: $size bytes ($((size / 1024)) KiB), installed size ${installed} KiB"
