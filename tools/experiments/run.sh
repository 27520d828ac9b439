#!/usr/bin/env bash
# One experiment: the default pipeline with overrides in a separate store, then the
# baselines beside the model. Appends a JSON line to $LOG (default /tmp/exp-logs/results.jsonl).
#   tools/experiments/run.sh NAME [--until bucket] [--set step.param=value]...
# STORE (default /tmp/exp-store), CATEGORY=1 to also measure category accuracy.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1
shift
store=${STORE:-/tmp/exp-store}
log=${LOG:-/tmp/exp-logs/results.jsonl}
mkdir -p "$(dirname "$log")"
start=$(date +%s.%N)
# CPU seconds (user + sys) are steadier than wall time on a shared machine.
/usr/bin/time -f "%U %S" -o "/tmp/exp-logs/$name.time" \
  nice -n 10 deno task pipeline train.yaml --store "$store" "$@" >"/tmp/exp-logs/$name.log" 2>&1
cpu=$(awk '{print $1 + $2}' "/tmp/exp-logs/$name.time")
end=$(date +%s.%N)
extra=()
if [[ ${CATEGORY:-0} == 1 ]]; then extra+=(--category); fi
# this run's record (runs in parallel each read their own)
record=$(grep -o 'record [^ ]*\.json' "/tmp/exp-logs/$name.log" | tail -1 | sed 's#.*/##')
json=$(deno run -A --unstable-webgpu tools/experiments/baselines.ts --store "$store" \
  --run "$record" --json "${extra[@]}")
wall=$(echo "$end - $start" | bc)
printf '{"name":"%s","args":"%s","wall_s":%.1f,"cpu_s":%.1f,%s\n' "$name" "$*" "$wall" "$cpu" "${json#\{}" >>"$log"
echo "$name: $(tail -1 "$log")"
