#!/usr/bin/env bash
# Connection variables for the servers started by scripts/services-up.sh.
#
#   source scripts/services-env.sh                    # exports the three below
#   source scripts/services-env.sh --redis-cluster --pg-replica
#                                                     # also TALLY_REDIS_CLUSTER_NODES / TALLY_PG_READ_URLS
#   eval "$(scripts/services-env.sh)"                 # run instead of sourced: prints export lines
#
# Values already set in the environment are kept. The cluster/replica variables are opt-in
# because setting them switches the code to those modes (DESIGN.md §4).
# Meant to be sourced into interactive shells and POSIX sh too, so it is POSIX sh except for the
# bash-only block at the end, and sets no shell options (no set -e).

TALLY_KAFKA_BROKERS="${TALLY_KAFKA_BROKERS:-127.0.0.1:19092}"
TALLY_REDIS_URL="${TALLY_REDIS_URL:-redis://127.0.0.1:16379}"
TALLY_PG_URL="${TALLY_PG_URL:-postgres://tally:tally@127.0.0.1:15432/tally}"
export TALLY_KAFKA_BROKERS TALLY_REDIS_URL TALLY_PG_URL

for __tally_arg in "$@"; do
  case "$__tally_arg" in
    --redis-cluster)
      TALLY_REDIS_CLUSTER_NODES="${TALLY_REDIS_CLUSTER_NODES:-127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003}"
      export TALLY_REDIS_CLUSTER_NODES
      ;;
    --pg-replica)
      TALLY_PG_READ_URLS="${TALLY_PG_READ_URLS:-postgres://tally:tally@127.0.0.1:15433/tally}"
      export TALLY_PG_READ_URLS
      ;;
  esac
done
unset __tally_arg

# Run rather than sourced (bash only): print the variables as shell export lines. Kept inside
# eval so that POSIX shells (dash: npm scripts, `sh -c`) can source this file too.
if [ -n "${BASH_VERSION:-}" ]; then
  eval '
    if [[ "${BASH_SOURCE[0]:-}" == "$0" ]]; then
      for __tally_var in TALLY_KAFKA_BROKERS TALLY_REDIS_URL TALLY_PG_URL \
        TALLY_REDIS_CLUSTER_NODES TALLY_PG_READ_URLS; do
        if [[ -n "${!__tally_var:-}" ]]; then
          printf "export %s=%s\n" "$__tally_var" "${!__tally_var@Q}"
        fi
      done
      exit 0
    fi
  '
fi
