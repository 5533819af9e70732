#!/usr/bin/env bash
# The GPU machine's check, one part at a time, each under 5 minutes:
#   bash bench/gpu_check.sh PART OUTDIR
# Runs prebuilt binaries from .carry/ (bash bench/pack_gpu.sh makes it; the GPU machine has no
# compilers or headers), writes full results as JSON under OUTDIR and prints a summary table
# last. Parts: profiler (issue 3), executor (issue 4), export (issue 5), nccl (the cuda
# backend across ranks), sweep (matrix products and eager kernels' host cost through PyTorch:
# bench/gemm_sweep.py; needs no pack).
set -uo pipefail

usage() { echo "usage: bash bench/gpu_check.sh profiler|executor|export|nccl|sweep OUTDIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
part=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
carry="$root/.carry"
bin="$carry/bin"
mkdir -p "$out"
export PP_SOURCE_DIR="$root"
export LD_LIBRARY_PATH="$carry/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
failures=0

step() { echo; echo "== $(date +%T) $*"; }
# run SECONDS NAME CMD...: runs with a time limit, records a failure without stopping.
run() {
  local limit=$1 name=$2 rc; shift 2
  timeout "$limit" "$@"
  rc=$?
  if (( rc != 0 )); then
    echo "!! $name failed (exit $rc)"
    failures=$((failures + 1))
  fi
}

# The CUDA 13 libraries may live in a Python wheel rather than /usr/local/cuda: find them.
find_cuda_libs() {
  if ldd "$bin/pp-partition" | grep -q "not found"; then
    local dirs
    dirs=$(find / -xdev \( -name 'libcublas.so.13' -o -name 'libcublasLt.so.13' -o -name 'libcupti.so.13' \) \
      2>/dev/null | xargs -r -n1 dirname | sort -u | tr '\n' ':')
    export LD_LIBRARY_PATH="${dirs}${LD_LIBRARY_PATH}"
  fi
}

part_profiler() {
  step "environment (cheap first)"
  [[ -x "$bin/pp-partition" ]] || { echo "no $bin/pp-partition: run bench/pack_gpu.sh first" >&2; exit 1; }
  cat "$carry/COMMIT" 2>/dev/null
  find_cuda_libs
  ldd "$bin/pp-partition" | grep -E "not found|cublas|cupti|openblas|cudart" | tee "$out/ldd.txt"
  run 30 version "$bin/pp-partition" --version
  run 30 nvidia-smi nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv

  step "CUDA layers against the CPU reference"
  run 120 cuda_layers_test "$bin/cuda_layers_test" --gtest_output="json:$out/cuda_layers_test.json"

  step "profiles (bf16)"
  cat > "$out/llama-7b-block.json" <<'JSON'
{"format": "pp-partition.model/v1", "name": "llama-7b-block", "source": "one block of models/llama-7b.json",
 "dtype": "bf16", "input": {"micro_batch_size": 1, "seq_len": 2048},
 "layers": [{"name": "embed", "op": "embedding", "vocab": 32000, "hidden": 4096},
  {"name": "block", "op": "transformer_block", "hidden": 4096, "heads": 32, "ffn": 11008,
   "norm": "rmsnorm", "mlp": "swiglu", "bias": false, "causal": true, "rotary": true}]}
JSON
  run 60 profile-gpt2-small "$bin/pp-partition" profile "$root/models/gpt2-small.json" --backend cuda \
    -o "$out/gpt2-small.profile.json"
  local t0=$SECONDS
  run 90 profile-gpt2-xl "$bin/pp-partition" profile "$root/models/gpt2-xl.json" --backend cuda \
    -o "$out/gpt2-xl.profile.json"
  echo "{\"gpt2_xl_profile_s\": $((SECONDS - t0))}" > "$out/profile_time.json"
  run 90 profile-gpt2-xl-again "$bin/pp-partition" profile "$root/models/gpt2-xl.json" --backend cuda \
    -o "$out/gpt2-xl.profile.2.json"
  run 60 profile-llama-block "$bin/pp-partition" profile "$out/llama-7b-block.json" --backend cuda \
    -o "$out/llama-7b-block.profile.json"
  # Grouped-query attention (8 key/value heads for 32): one block of models/llama3-8b.json.
  cat > "$out/llama3-8b-block.json" <<'JSON'
{"format": "pp-partition.model/v1", "name": "llama3-8b-block", "source": "one block of models/llama3-8b.json",
 "dtype": "bf16", "input": {"micro_batch_size": 1, "seq_len": 4096},
 "layers": [{"name": "embed", "op": "embedding", "vocab": 128256, "hidden": 4096},
  {"name": "block", "op": "transformer_block", "hidden": 4096, "heads": 32, "kv_heads": 8,
   "ffn": 14336, "norm": "rmsnorm", "mlp": "swiglu", "bias": false, "causal": true, "rotary": true}]}
JSON
  run 60 profile-llama3-block "$bin/pp-partition" profile "$out/llama3-8b-block.json" --backend cuda \
    -o "$out/llama3-8b-block.profile.json"
  run 30 profile-fp32-small "$bin/pp-partition" profile "$root/models/mlp-2gpu.json" --backend cuda \
    --dtype fp32 -o "$out/mlp-2gpu.fp32.profile.json"

  step "calibration: a device file of this GPU, then a plan on it"
  run 180 calibrate "$bin/pp-partition" profile --backend cuda --calibrate -o "$out/device.json"
  run 30 plan-device-file "$bin/pp-partition" plan "$root/models/gpt2-xl.json" --stages 4 \
    --micro-batches 8 --device-file "$out/device.json" --format json -o "$out/plan-device-file.json"
  # The calibrated device at a layout and in the layout search (Llama 3 70B on 64 GPUs).
  run 60 plan-layout-device-file "$bin/pp-partition" plan "$root/models/llama3-70b.json" \
    --stages 4 --tp 8 --gpus-total 64 --global-batch 512 --micro-batch-size 1 \
    --device-file "$out/device.json" --format json -o "$out/plan-layout-device-file.json"

  step "sum of layers against a whole-model step (one GPU)"
  run 60 step-gpt2-small "$bin/cuda_step_bench" "$root/models/gpt2-small.json" -o "$out/step-gpt2-small.json"
  run 90 step-gpt2-xl "$bin/cuda_step_bench" "$root/models/gpt2-xl.json" --micro-batch-size 4 \
    -o "$out/step-gpt2-xl.json"

  step "the same layers in PyTorch eager (bf16)"
  run 90 torch-gpt2-xl python3 "$root/bench/torch_layers.py" "$root/models/gpt2-xl.json" \
    -o "$out/torch-gpt2-xl.json" >/dev/null
  run 60 torch-llama-block python3 "$root/bench/torch_layers.py" "$out/llama-7b-block.json" \
    -o "$out/torch-llama-7b-block.json" >/dev/null

  step "the analytic model against PyTorch eager on this GPU: one block of the 1.7B and 16B models of Megatron-LM's H100 table (docs/published.md), sequence 4096"
  for spec in "1.7b 2048 16" "16b 6144 48"; do
    set -- $spec
    cat > "$out/readme-$1-block.json" <<JSON
{"format": "pp-partition.model/v1", "name": "readme-$1-block", "source": "one block of the $1 GPT of bench/data/megatron-h100-2024.json",
 "dtype": "bf16", "input": {"micro_batch_size": 1, "seq_len": 4096},
 "layers": [{"name": "embed", "op": "embedding", "vocab": 131072, "hidden": $2, "positions": 4096},
  {"name": "block", "op": "transformer_block", "hidden": $2, "heads": $3, "ffn": $(( 4 * $2 )),
   "norm": "layernorm", "mlp": "gelu", "bias": true, "causal": true, "rotary": false}]}
JSON
    run 30 "analytic-readme-$1" "$bin/pp-partition" profile "$out/readme-$1-block.json" --device h100 \
      -o "$out/readme-$1-block.analytic.json"
    run 30 "cuda-readme-$1" "$bin/pp-partition" profile "$out/readme-$1-block.json" --backend cuda \
      -o "$out/readme-$1-block.profile.json"
    run 60 "torch-readme-$1" python3 "$root/bench/torch_layers.py" "$out/readme-$1-block.json" \
      -o "$out/torch-readme-$1-block.json" >/dev/null
  done

  step "summary (failures: $failures; full results in $out)"
  python3 - "$out" "$failures" <<'PY'
import json, os, sys
out, failures = sys.argv[1], int(sys.argv[2])
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
summary = {"failures": failures, "targets": {}}
t = summary["targets"]
for name in ("step-gpt2-small.json", "step-gpt2-xl.json"):
    s = load(name)
    if s:
        t[name[:-5] + " sum/step (within 5%)"] = s["sum_over_step"]
a, b = load("gpt2-xl.profile.json"), load("gpt2-xl.profile.2.json")
if a and b:
    worst = max(abs(x["forward_ms"] - y["forward_ms"]) / max(x["forward_ms"], 1e-9)
                for x, y in zip(a["layers"], b["layers"]))
    t["gpt2-xl repeatability, worst forward median change (<= 2%)"] = worst
pt = load("profile_time.json")
if pt:
    t["gpt2-xl profile seconds (< 60)"] = pt["gpt2_xl_profile_s"]
dev = load("device.json")
if dev:
    e = dev["efficiency"]
    t["calibrated gemm bf16 fraction (table: 0.803 H100/H200, 0.869 A100)"] = e["gemm"]["bf16"]
    t["calibrated gemm fp8 fraction (table: 0.709 H100, 0.734 H200)"] = e["gemm"].get("fp8", 1)
    t["calibrated attention forward bf16 fraction (table: 0.75 / 0.73)"] = e["attention_forward"]["bf16"]
    t["calibrated memory fraction (table: 0.89)"] = e["memory"]
    t["calibrated launch ms (table: 0.0027)"] = e["launch_ms"]
    t["calibrated node bus GB/s (table: 370 / 230)"] = dev["node_bus_bytes_per_s"] / 1e9
tests = load("cuda_layers_test.json")
if tests:
    t["cuda layer tests failed"] = tests.get("failures", "?")
rows = []
for prof_name, torch_name in (("gpt2-xl.profile.json", "torch-gpt2-xl.json"),
                              ("llama-7b-block.profile.json", "torch-llama-7b-block.json"),
                              ("readme-1.7b-block.profile.json", "torch-readme-1.7b-block.json"),
                              ("readme-1.7b-block.analytic.json", "torch-readme-1.7b-block.json"),
                              ("readme-16b-block.profile.json", "torch-readme-16b-block.json"),
                              ("readme-16b-block.analytic.json", "torch-readme-16b-block.json")):
    prof, tor = load(prof_name), load(torch_name)
    if not prof or not tor:
        continue
    ours = {}
    for l in prof["layers"]:
        ours.setdefault(l["op"], l["forward_ms"] + l["backward_ms"])
    for kind, r in tor["layers"].items():
        base = kind.replace("_explicit", "")
        if base in ours:
            rows.append({"model": prof["model"], "backend": prof.get("backend", "?"),
                         "kind": kind, "ours_ms": ours[base],
                         "pytorch_ms": r["total_ms"], "ratio": ours[base] / r["total_ms"]})
summary["table"] = rows
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
for k, v in t.items():
    print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
print()
print(f"{'model':<18} {'ours':<9} {'layer kind':<30} {'ours ms':>10} {'PyTorch ms':>11} {'ratio':>7}")
for r in rows:
    print(f"{r['model']:<18} {r['backend']:<9} {r['kind']:<30} {r['ours_ms']:>10.3f} {r['pytorch_ms']:>11.3f} {r['ratio']:>7.2f}")
PY
  return $(( failures > 0 ))
}

# Issue 4: the cuda backend of `run`. Gradients against a sequential run, host overhead per op,
# then GPT-2 medium on four green-context shares of one GPU: predicted against measured.
part_executor() {
  step "environment (cheap first)"
  for b in pp-partition cuda_runtime_test runtime_overhead_bench; do
    [[ -x "$bin/$b" ]] || { echo "no $bin/$b: run bench/pack_gpu.sh first" >&2; exit 1; }
  done
  cat "$carry/COMMIT" 2>/dev/null
  find_cuda_libs
  # Four stages with a compute and a copy stream each: more hardware queues than the default 8,
  # so that independent streams do not serialise behind each other.
  export CUDA_DEVICE_MAX_CONNECTIONS=32
  run 30 nvidia-smi nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv

  step "host overhead per op (target < 20 us)"
  run 60 overhead-cpu "$bin/runtime_overhead_bench" --stages 4 --micro-batches 64 > "$out/overhead-cpu.json"
  run 60 overhead-cuda "$bin/runtime_overhead_bench" --cuda --stages 4 --micro-batches 64 > "$out/overhead-cuda.json"
  cat "$out/overhead-cpu.json" "$out/overhead-cuda.json"

  step "cuda runtime gradients against a sequential run (gpipe, 1f1b; p 1-4; m 1, 4, 8)"
  run 150 cuda_runtime_test "$bin/cuda_runtime_test" --gtest_output="json:$out/cuda_runtime_test.json"

  step "gpt2-medium, 4 virtual stages (0x4), m = 16: profile on one share, plan, run"
  local model="$root/models/gpt2-medium.json"
  run 120 profile-medium-0x4 "$bin/pp-partition" profile "$model" --backend cuda --gpus 0x4 \
    -o "$out/gpt2-medium.0x4.profile.json"
  # The profile gives each share a quarter of the GPU's memory: gpipe, which holds every
  # micro-batch, plans 8 of them, 1f1b 16.
  for method in dp uniform; do
    for sched in gpipe 1f1b; do
      local m=16
      [[ $sched == gpipe ]] && m=8
      run 30 "plan-$method-$sched" "$bin/pp-partition" plan "$model" --profile "$out/gpt2-medium.0x4.profile.json" \
        --stages 4 --micro-batches $m --schedule "$sched" --method "$method" -o "$out/plan-$method-$sched.json"
    done
  done
  # Back to back, dp then uniform, for each schedule.
  for sched in gpipe 1f1b; do
    for method in dp uniform; do
      run 90 "run-$method-$sched" "$bin/pp-partition" run "$out/plan-$method-$sched.json" --backend cuda \
        --gpus 0x4 --steps 5 --warmup 2 --trace "$out/run-$method-$sched.trace.json" \
        -o "$out/ran-$method-$sched.json"
    done
  done

  step "gpt2-small: the loss falls over 50 steps (4 virtual stages, 1f1b, m = 4)"
  run 30 plan-small "$bin/pp-partition" plan "$root/models/gpt2-small.json" --stages 4 --micro-batches 4 \
    --schedule 1f1b -o "$out/plan-small.json"
  # The text report carries "loss A (step 1) -> B (step N)"; -o writes the JSON beside it.
  run 120 run-small "$bin/pp-partition" run "$out/plan-small.json" --backend cuda --gpus 0x4 --steps 50 \
    --warmup 0 --lr 3e-4 -o "$out/ran-small.json" > "$out/run-small-report.txt" 2>&1
  tail -3 "$out/run-small-report.txt"

  step "summary (failures: $failures; full results in $out)"
  python3 - "$out" "$failures" <<'PY'
import json, os, re, sys
out, failures = sys.argv[1], int(sys.argv[2])
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
summary = {"failures": failures, "targets": {}, "table": []}
t = summary["targets"]
for path in ("cpu", "cuda"):
    o = load(f"overhead-{path}.json")
    if o:
        t[f"host overhead per op, {path} (us, < 20)"] = o["us_per_op"]
tests = load("cuda_runtime_test.json")
if tests:
    t["cuda runtime tests failed"] = tests.get("failures", "?")
for sched in ("gpipe", "1f1b"):
    ran = {}
    for method in ("dp", "uniform"):
        r = load(f"ran-{method}-{sched}.json")
        if not r or "measured" not in r:
            continue
        p, m = r["predicted"], r["measured"]
        ran[method] = m
        peak_err = max((abs(ms["peak_memory_bytes"] - ps["peak_memory_bytes"]) / ps["peak_memory_bytes"]
                        for ms, ps in zip(m.get("stages", []), r["stages"])), default=float("nan"))
        row = {"plan": f"{method}/{sched}", "bubble_pred": p["bubble_ratio"], "bubble_meas": m["bubble_ratio"],
               "step_pred_ms": p["step_time_ms"], "step_meas_ms": m["step_time_ms"],
               "peak_mem_worst_rel_err": peak_err, "throughput": m["throughput_samples_per_s"]}
        summary["table"].append(row)
        if method == "dp":
            t[f"{sched} bubble error (points, <= 3)"] = 100 * abs(m["bubble_ratio"] - p["bubble_ratio"])
            t[f"{sched} step time error (<= 10%)"] = abs(m["step_time_ms"] - p["step_time_ms"]) / p["step_time_ms"]
            t[f"{sched} worst stage peak memory error (<= 10%)"] = peak_err
    if "dp" in ran and "uniform" in ran:
        t[f"{sched} dp / uniform throughput (>= 1)"] = ran["dp"]["throughput_samples_per_s"] / ran["uniform"]["throughput_samples_per_s"]
try:
    text = open(os.path.join(out, "run-small-report.txt")).read()
    mt = re.search(r"loss ([0-9.]+) \(step 1\) -> ([0-9.]+) \(step (\d+)\)", text)
    if mt:
        t["gpt2-small loss, step 1 -> 50 (falls)"] = f"{mt.group(1)} -> {mt.group(2)}"
except OSError:
    pass
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
for k, v in t.items():
    print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
print()
print(f"{'plan':<14} {'bubble pred':>11} {'meas':>6} {'step pred ms':>13} {'meas':>9} {'peak err':>9} {'samples/s':>10}")
for r in summary["table"]:
    print(f"{r['plan']:<14} {r['bubble_pred']:>11.3f} {r['bubble_meas']:>6.3f} {r['step_pred_ms']:>13.2f} "
          f"{r['step_meas_ms']:>9.2f} {r['peak_mem_worst_rel_err']:>9.3f} {r['throughput']:>10.1f}")
PY
  return $(( failures > 0 ))
}

# torch.distributed.pipelining accepts the `export --to torch` split points (CPU only, seconds).
part_export() {
  step "environment"
  [[ -x "$bin/pp-partition" ]] || { echo "no $bin/pp-partition: run bench/pack_gpu.sh first" >&2; exit 1; }
  find_cuda_libs
  run 30 version "$bin/pp-partition" --version
  python3 -c "import torch; print('torch', torch.__version__)" | tee "$out/torch_version.txt"
  step "plans of a small GPT-like model, exported for torch"
  cat > "$out/export-model.json" <<'JSON'
{"format": "pp-partition.model/v1", "name": "export-check", "source": "bench/gpu_check.sh export",
 "dtype": "bf16", "input": {"micro_batch_size": 2, "seq_len": 32},
 "layers": [{"name": "embed", "op": "embedding", "vocab": 512, "hidden": 64, "positions": 32},
  {"name": "block", "op": "transformer_block", "hidden": 64, "heads": 4, "ffn": 256,
   "causal": true, "repeat": 8},
  {"name": "ln_f", "op": "layernorm", "hidden": 64},
  {"name": "lm_head", "op": "linear", "in": 64, "out": 512, "bias": false},
  {"name": "loss", "op": "cross_entropy"}]}
JSON
  local snippets=()
  for p in 2 3 4; do
    for method in dp uniform; do
      "$bin/pp-partition" plan "$out/export-model.json" --stages $p --micro-batches 8 \
        --method $method -o "$out/plan-$p-$method.json" >/dev/null || failures=$((failures + 1))
      "$bin/pp-partition" export "$out/plan-$p-$method.json" --to torch \
        -o "$out/split-$p-$method.py" || failures=$((failures + 1))
      snippets+=("$out/split-$p-$method.py")
    done
  done
  step "pipeline() on each split"
  run 240 torch_export_check python3 "$root/bench/torch_export_check.py" "$out/export-model.json" \
    "${snippets[@]}" > "$out/export_check.txt" 2>&1
  cat "$out/export_check.txt"
  echo; echo "export part: $failures failure(s)"
  [[ $failures -eq 0 ]]
}

# The cuda backend across ranks: the nccl transport on 2 ranks against one process
# (tests/mpi_test.cc, MpiNccl.*). Needs mpirun (openmpi-bin), 2 GPUs and a pack made with
# PACK_NCCL=1 (mpi_test, mpi_worker and the modules pp-partition-mpi.so, pp-partition-nccl.so).
part_nccl() {
  step "environment (cheap first)"
  cat "$carry/COMMIT" 2>/dev/null
  if ! command -v mpirun >/dev/null; then
    echo "nccl part skipped: mpirun is not installed here (Debian: openmpi-bin)"; return 0
  fi
  local gpus
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  if (( gpus < 2 )); then
    echo "nccl part skipped: the nccl transport takes one GPU per rank; 2 ranks need 2 GPUs, this machine has $gpus"
    return 0
  fi
  for b in pp-partition pp-partition-mpi.so pp-partition-nccl.so mpi_test mpi_worker; do
    [[ -e "$bin/$b" ]] || { echo "no $bin/$b: run PACK_NCCL=1 bash bench/pack_gpu.sh first" >&2; exit 1; }
  done
  find_cuda_libs
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export PP_PARTITION_BINARY="$bin/pp-partition"
  step "nccl transport: 2 ranks on 2 GPUs against one process"
  run 240 mpi_test_nccl "$bin/mpi_test" --gtest_filter='MpiNccl.*' \
    --gtest_output="json:$out/mpi_test_nccl.json"
  echo; echo "nccl part: $failures failure(s)"
  [[ $failures -eq 0 ]]
}

# Matrix products over a grid of shapes and the MoE models' expert shapes, bf16 and fp8, and the
# host's cost per eager kernel (bench/gemm_sweep.py), for the efficiency model's checks.
part_sweep() {
  step "environment"
  run 30 nvidia-smi nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
  step "matrix products and host costs"
  PYTHONUNBUFFERED=1 run 240 gemm_sweep python3 "$root/bench/gemm_sweep.py" -o "$out/gemm_sweep.json"
  echo; echo "sweep part: $failures failure(s)"
  [[ $failures -eq 0 ]]
}

case "$part" in
  profiler) part_profiler ;;
  executor) part_executor ;;
  export) part_export ;;
  nccl) part_nccl ;;
  sweep) part_sweep ;;
  *) usage ;;
esac
