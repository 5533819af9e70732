#!/usr/bin/env bash
# One call on the GPU machine: parts of bench/gpu_check.sh in turn, each under its own time
# limit, their results packed into OUT/results.tgz (the call brings back a few files, not a
# tree) and the end of each part's log printed.
#   bash bench/gpu_session.sh OUT [PART...]     (default: profiler executor sweep)
# Pack first, here: PACK_BUILD_DIR=build bash bench/pack_gpu.sh; carry .carry with the call.
# The limits add up to under 10 minutes; a part that reaches its limit is stopped and the next
# one runs.
set -u
[[ $# -ge 1 ]] || { echo "usage: bash bench/gpu_session.sh OUT [PART...]" >&2; exit 2; }
out=$1
shift
parts=("$@")
[[ ${#parts[@]} -gt 0 ]] || parts=(profiler executor sweep)
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
declare -A limit=([profiler]=300 [executor]=200 [sweep]=90 [export]=120 [nccl]=240)
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.limit --format=csv > "$work/gpu.txt" 2>&1
for part in "${parts[@]}"; do
  mkdir -p "$work/$part"
  start=$SECONDS
  timeout "${limit[$part]:-300}" bash "$root/bench/gpu_check.sh" "$part" "$work/$part" \
    > "$work/$part.log" 2>&1
  echo "$part: exit $? after $((SECONDS - start)) s (limit ${limit[$part]:-300} s)" >> "$work/parts.txt"
done
tar czf "$out/results.tgz" -C "$work" .
cat "$work/gpu.txt" "$work/parts.txt"
for part in "${parts[@]}"; do
  echo
  echo "== $part (the end of its log; all of it in results.tgz)"
  tail -c 2500 "$work/$part.log"
done
