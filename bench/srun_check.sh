#!/usr/bin/env bash
# `run` launched by Slurm's srun instead of mpirun, on a machine where Slurm runs (sinfo
# answers) with the pmix MPI plugin:
#   bash bench/srun_check.sh [BUILD_DIR] [OUTDIR]
# 1. A 2-stage plan (interleaved, every chunk recomputing) run by `srun -n 2 --mpi=pmix`: the
#    same losses as the same plan run in one process (fixed seed).
# 2. The wrong number of tasks (srun -n 3): exit 2 at once, "this plan needs 2 × r ranks".
# 3. Two data-parallel replicas (srun -n 4, --replicas 2): the same losses as mpirun -np 4.
# 4. Task 1 killed with SIGKILL mid-step, then task 1 stopped with SIGSTOP: every task ends
#    within the timeout (plus slack), non-zero, no pp-partition process is left, and the
#    survivor names its rank, device, op and micro-batch (for the kill, Slurm's pmix plugin
#    may cancel the step first; its line naming the dead task then stands for it).
# Tasks beyond the machine's cores are overcommitted (srun -O). Prints one line per check and
# exits non-zero when one fails.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out=${2:-$(mktemp -d)}
bin=$build/tool/pp-partition
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
command -v srun >/dev/null && sinfo >/dev/null 2>&1 || { echo "srun_check: no Slurm here (sinfo does not answer)" >&2; exit 2; }
failed=0
check() {  # check NAME CONDITION-STATUS DETAIL
  if [[ $2 -eq 0 ]]; then echo "ok    $1: $3"; else echo "FAIL  $1: $3"; failed=1; fi
}

cat > "$out/deep.json" <<'JSON'
{"format": "pp-partition.model/v1", "name": "deep-mlp", "dtype": "fp32",
 "input": {"micro_batch_size": 16, "features": 256},
 "layers": [
   {"name": "fc1", "op": "linear", "in": 256, "out": 256, "bias": true},
   {"name": "fc2", "op": "linear", "in": 256, "out": 256, "bias": true},
   {"name": "fc3", "op": "linear", "in": 256, "out": 256, "bias": true},
   {"name": "fc4", "op": "linear", "in": 256, "out": 256, "bias": true},
   {"name": "fc5", "op": "linear", "in": 256, "out": 256, "bias": true},
   {"name": "fc6", "op": "linear", "in": 256, "out": 256, "bias": true},
   {"name": "loss", "op": "mse"}]}
JSON
"$bin" profile "$out/deep.json" --backend cpu -o "$out/deep.profile.json" >/dev/null 2>&1
"$bin" plan "$out/deep.json" --profile "$out/deep.profile.json" --stages 2 --schedule interleaved \
  --virtual-stages 2 --micro-batches 4 --recompute all -o "$out/deep.plan.json" >/dev/null 2>&1
run=("$bin" run "$out/deep.plan.json" --backend cpu --steps 4 --warmup 1)
losses() { grep '^loss ' "$1"; }

# 1. srun against one process.
"${run[@]}" > "$out/single.txt" 2>&1
srun -n 2 --mpi=pmix "${run[@]}" > "$out/srun2.txt" 2>&1
rc=$?
[[ $rc -eq 0 && -n "$(losses "$out/single.txt")" && "$(losses "$out/single.txt")" == "$(losses "$out/srun2.txt")" ]]
check "srun -n 2" $? "exit $rc; one process: $(losses "$out/single.txt"); srun: $(losses "$out/srun2.txt")"

# 2. The wrong number of tasks.
start=$(date +%s.%N)
srun -O -n 3 --mpi=pmix "${run[@]}" > "$out/srun3.txt" 2>&1
rc=$?
took=$(echo "$(date +%s.%N) - $start" | bc)
[[ $rc -ne 0 ]] && grep -q "this plan needs 2 × r ranks" "$out/srun3.txt" && ! grep -q '^loss ' "$out/srun3.txt"
check "srun -n 3" $? "exit $rc after ${took} s: $(grep -m1 'needs' "$out/srun3.txt")"

# 3. Replicas: srun against mpirun.
srun -O -n 4 --mpi=pmix "${run[@]}" --replicas 2 > "$out/srun4.txt" 2>&1
rc=$?
mpirun --oversubscribe -np 4 "${run[@]}" --replicas 2 > "$out/mpirun4.txt" 2>&1
[[ $rc -eq 0 && -n "$(losses "$out/mpirun4.txt")" && "$(losses "$out/mpirun4.txt")" == "$(losses "$out/srun4.txt")" ]]
check "srun -n 4 --replicas 2" $? "exit $rc; mpirun: $(losses "$out/mpirun4.txt"); srun: $(losses "$out/srun4.txt")"

# 4. Faults: task 1 killed or stopped mid-step.
fault() {  # fault SIGNAL TIMEOUT_S SLACK_S
  local signal=$1 timeout=$2 slack=$3 log="$out/fault-$1.txt"
  srun -n 2 --mpi=pmix "$bin" run "$out/deep.plan.json" --backend cpu --steps 100000 --warmup 0 \
    --timeout "$timeout" --time-limit 300 > /dev/null 2> "$log" &
  local job=$! victim="" pid
  for _ in $(seq 1 200); do
    sleep 0.05
    for pid in $(pgrep -f "pp-partition run $out/deep.plan.json" || true); do
      if tr "\0" "\n" < "/proc/$pid/environ" 2>/dev/null | grep -qx "SLURM_PROCID=1"; then victim=$pid; fi
    done
    [[ -n $victim ]] && break
  done
  [[ -n $victim ]] || { check "task 1 $signal" 1 "task 1 never started"; kill "$job"; return; }
  sleep 2
  kill -s "$signal" "$victim"
  local sent ended rc left
  sent=$(date +%s.%N)
  wait "$job"
  rc=$?
  ended=$(echo "$(date +%s.%N) - $sent" | bc)
  sleep 1
  left=$(pgrep -f "pp-partition run $out/deep.plan.json" | wc -l)
  [[ $signal == STOP ]] && kill -KILL "$victim" 2>/dev/null
  # The survivor names its rank, device, op and micro-batch; or, when a task dies, Slurm's
  # pmix plugin cancels the step first and its own line names the task.
  local named
  named=$(grep -m1 "rank 0 (stage 0.*op .*micro-batch " "$log" || grep -m1 "task 1: Killed" "$log")
  [[ $rc -ne 0 && $left -eq 0 && -n $named ]] && (( $(echo "$ended < $timeout + $slack" | bc) ))
  check "task 1 $signal" $? "all ended ${ended} s after the signal (timeout ${timeout} s), exit $rc, $left left; $named"
}
fault KILL 5 5
fault STOP 2 8

echo "== $(hostname), $(nproc) cores, $(srun --version)"
exit $failed
