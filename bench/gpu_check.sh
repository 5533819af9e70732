#!/usr/bin/env bash
# The GPU machine's check, one part at a time, each under 5 minutes:
#   bash bench/gpu_check.sh PART OUTDIR
# Runs prebuilt binaries from .carry/ (bash bench/pack_gpu.sh makes it; the GPU machine has no
# compilers or headers), writes full results as JSON under OUTDIR and prints a summary table
# last. Parts: profiler (issue 3). Later issues add their own.
set -uo pipefail

usage() { echo "usage: bash bench/gpu_check.sh profiler OUTDIR" >&2; exit 2; }
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
  local limit=$1 name=$2; shift 2
  if ! timeout "$limit" "$@"; then
    echo "!! $name failed (exit $?)"
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
  run 30 profile-fp32-small "$bin/pp-partition" profile "$root/models/mlp-2gpu.json" --backend cuda \
    --dtype fp32 -o "$out/mlp-2gpu.fp32.profile.json"

  step "sum of layers against a whole-model step (one GPU)"
  run 60 step-gpt2-small "$bin/cuda_step_bench" "$root/models/gpt2-small.json" -o "$out/step-gpt2-small.json"
  run 90 step-gpt2-xl "$bin/cuda_step_bench" "$root/models/gpt2-xl.json" --micro-batch-size 4 \
    -o "$out/step-gpt2-xl.json"

  step "the same layers in PyTorch eager (bf16)"
  run 90 torch-gpt2-xl python3 "$root/bench/torch_layers.py" "$root/models/gpt2-xl.json" \
    -o "$out/torch-gpt2-xl.json" >/dev/null
  run 60 torch-llama-block python3 "$root/bench/torch_layers.py" "$out/llama-7b-block.json" \
    -o "$out/torch-llama-7b-block.json" >/dev/null

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
tests = load("cuda_layers_test.json")
if tests:
    t["cuda layer tests failed"] = tests.get("failures", "?")
rows = []
for prof_name, torch_name in (("gpt2-xl.profile.json", "torch-gpt2-xl.json"),
                              ("llama-7b-block.profile.json", "torch-llama-7b-block.json")):
    prof, tor = load(prof_name), load(torch_name)
    if not prof or not tor:
        continue
    ours = {}
    for l in prof["layers"]:
        ours.setdefault(l["op"], l["forward_ms"] + l["backward_ms"])
    for kind, r in tor["layers"].items():
        base = kind.replace("_explicit", "")
        if base in ours:
            rows.append({"model": prof["model"], "kind": kind, "ours_ms": ours[base],
                         "pytorch_ms": r["total_ms"], "ratio": ours[base] / r["total_ms"]})
summary["table"] = rows
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
for k, v in t.items():
    print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
print()
print(f"{'model':<16} {'layer kind':<30} {'ours ms':>10} {'PyTorch ms':>11} {'ratio':>7}")
for r in rows:
    print(f"{r['model']:<16} {r['kind']:<30} {r['ours_ms']:>10.3f} {r['pytorch_ms']:>11.3f} {r['ratio']:>7.2f}")
PY
  return $(( failures > 0 ))
}

case "$part" in
  profiler) part_profiler ;;
  *) usage ;;
esac
