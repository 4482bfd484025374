#!/usr/bin/env bash
# Builds the Debian package of pipedeck with cargo-deb (installed from crates.io
# when missing): the release binary, then the man pages and completion scripts the
# binary generates, into target/package/, then `cargo deb --no-build`.
# Prints the .deb's path as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb from crates.io" >&2
  cargo install cargo-deb --locked >&2
fi

cargo build --release --locked >&2
bin="$PWD/target/release/pipedeck"
out=target/package
rm -rf "$out"
mkdir -p "$out/man" "$out/completions"

"$bin" man --dir "$out/man" >&2
# Debian policy: man pages compressed with gzip -9n (no name or time stamp).
gzip -9n "$out"/man/*.1
# Run from PATH, the scripts call back `pipedeck` (found on PATH), not this build path.
PATH="$(dirname "$bin"):$PATH" pipedeck completions bash >"$out/completions/pipedeck.bash"
PATH="$(dirname "$bin"):$PATH" pipedeck completions zsh >"$out/completions/_pipedeck"
PATH="$(dirname "$bin"):$PATH" pipedeck completions fish >"$out/completions/pipedeck.fish"
if grep -q "$bin" "$out"/completions/*; then
  echo "error: a completion script names the build path $bin" >&2
  exit 1
fi

# The example's schema directive, pointed at where the package puts the schema.
sed '1s|^#:schema .*|#:schema file:///usr/share/pipedeck/pipedeck.schema.json|' \
  config.example.toml >"$out/config.example.toml"

cargo deb --no-build >&2
ls -t target/debian/pipedeck_*.deb | head -n 1
