#!/bin/sh
# Colourful output: the dashboard renders SGR colours and neutralises everything else.
printf '\033[1;34m== web build ==\033[0m\n'
printf 'commit \033[33m%s\033[0m on branch \033[32m%s\033[0m\n' "$PIPEDECK_COMMIT" "$PIPEDECK_BRANCH"
printf 'message: %s\n' "$PIPEDECK_COMMIT_MESSAGE"
printf 'using token %s\n' "$DEMO_TOKEN"
for c in 31 32 33 34 35 36; do printf '\033[%sm#####\033[0m' "$c"; done
printf '\n\033[1;32mready\033[0m\n'
