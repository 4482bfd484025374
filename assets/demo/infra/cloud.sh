#!/bin/sh
# A pretend cloud for the demo's infra pipeline (the `command` driver contract):
# run in the resource's state dir with its inputs in $PIPEDECK_INPUTS (JSON) and
# PIPEDECK_INPUT_* variables; apply writes outputs as a JSON object to $PIPEDECK_OUTPUTS.
set -eu
op="$1"
state="state.json"
case "$op" in
  init)
    echo "initialising $PIPEDECK_KIND $PIPEDECK_RESOURCE in $PIPEDECK_ENV"
    ;;
  refresh)
    if [ -f "$state" ]; then echo "refreshed: $(cat "$state")"; else echo "refreshed: nothing deployed yet"; fi
    ;;
  preview)
    if [ "${PIPEDECK_OPERATION:-}" = "preview" ] && [ -f "$state" ] && [ "$(cat "$state")" = "$(cat "$PIPEDECK_INPUTS")" ]; then
      echo "plan: 0 to add, 0 to change, 0 to destroy"
    elif [ -f "$state" ]; then
      echo "plan: 0 to add, 1 to change, 0 to destroy ($PIPEDECK_RESOURCE)"
    else
      echo "plan: 1 to add, 0 to change, 0 to destroy ($PIPEDECK_RESOURCE)"
    fi
    ;;
  apply)
    sleep 0.3
    cp "$PIPEDECK_INPUTS" "$state"
    id="$PIPEDECK_RESOURCE-$(cksum "$state" | cut -c1-6)"
    printf '{"id": "%s", "address": "%s"}\n' "$id" "$id.${PIPEDECK_ENV}.demo.internal" > "$PIPEDECK_OUTPUTS"
    printf '\033[32mapplied\033[0m %s\n' "$id"
    ;;
  destroy)
    sleep 0.2
    rm -f "$state"
    printf '\033[31mdestroyed\033[0m %s\n' "$PIPEDECK_RESOURCE"
    ;;
esac
