#!/usr/bin/env bash
# Runs the Kubernetes Job's command (deploy/kubernetes/sweep-job.yaml) for
# every index on this machine, one index after another, then merges the
# shards' results as the Job's collector would: the path from shards to one
# verdict, tested without a cluster (tests/integration/scale.rs runs it).
#
#   deploy/local-shards.sh N OUT-DIR SWEEP-ARGS...
#   deploy/local-shards.sh 4 results scenarios --seeds 20
#
# FAULTLINE names the binary (default: faultline on the PATH). The exit code
# is merge's: 0 passed, 1 a check failed, 2 bad input (or a missing shard),
# 3 could not judge (docs/failures.md).
set -euo pipefail

if [ "$#" -lt 3 ]; then
  echo "usage: $0 N OUT-DIR SWEEP-ARGS... (e.g. $0 4 results scenarios --seeds 20)" >&2
  exit 2
fi
count=$1
out=$2
shift 2
faultline=${FAULTLINE:-faultline}
mkdir -p "$out"

for ((index = 0; index < count; index++)); do
  # The Job's command, with JOB_COMPLETION_INDEX set as Kubernetes sets it.
  # --resume: a shard started again (a retried pod, a second run of this
  # script) goes on where it stopped instead of running seeds twice.
  JOB_COMPLETION_INDEX=$index
  "$faultline" sweep "$@" --shard "$JOB_COMPLETION_INDEX/$count" --out "$out/shard-$JOB_COMPLETION_INDEX.jsonl" --resume
done

exec "$faultline" merge "$out"/shard-*.jsonl
