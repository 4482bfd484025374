#!/bin/sh
# "Deploys" the packaged build into the data dir, atomically, then smoke-tests it.
set -eu
env="${PIPEDECK_ENV:?PIPEDECK_ENV is not set}"
dest="$PIPEDECK_DATA_DIR/demo-deploys/$PIPEDECK_SERVICE/$env"
mkdir -p "$dest"
tmp="$dest/.incoming-$PIPEDECK_RUN_ID"
rm -rf "$tmp" && mkdir -p "$tmp"
tar xzf build/web.tgz -C "$tmp"
echo "$PIPEDECK_COMMIT" > "$tmp/COMMIT"
rm -rf "$dest/current" && mv "$tmp" "$dest/current"
echo "deployed $(cat "$dest/current/COMMIT" | cut -c1-7) to $env"
"$dest/current/web" --health
"$dest/current/web" "$env"
