#!/bin/sh
# Lint: every source file ends with a newline and has no tabs.
set -eu
status=0
for f in src/*.rs scripts/*.sh; do
    if [ -n "$(tail -c 1 "$f")" ]; then echo "$f: no newline at end of file"; status=1; fi
    if grep -n "$(printf '\t')" "$f"; then echo "$f: tab characters"; status=1; fi
    echo "checked $f"
done
exit $status
