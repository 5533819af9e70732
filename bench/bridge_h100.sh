#!/usr/bin/env bash
# Predictions against Megatron-Bridge's measured DGX-H100 pre-training rows:
#   bash bench/bridge_h100.sh [BUILD_DIR]
# Each row is planned at its published layout (`plan --device h100 --dtype fp8` with its tp,
# pp, cp, ep, virtual stages, GPUs, global batch and micro-batch; the distributed optimizer as
# --zero 1, FSDP as --zero 3) and the predicted figure printed beside the measured one. The
# measured figures are from Megatron-Bridge's docs/performance-summary-archive.md (NeMo
# containers 25.09, 25.11, 26.02.01, 26.04.01 and 26.06; FP8 with current scaling; the MoE rows
# force a balanced, dropless token distribution; the Qwen3-235B recipes fold the expert group
# over the tensor ranks, expert_tensor_parallel_size 1, hence --etp 1, and overlap the
# experts' all-to-all across micro-batches, overlap_moe_expert_parallel_comm, hence
# --overlap-expert-comm on; the Qwen3-30B ep 16 recipe of the 26.06 era dispatches with
# HybridEP, moe_token_dispatcher_type flex in perf_recipes/qwen/h100/qwen3_moe.py, hence
# --moe-dispatcher flex; so does the Qwen3-30B pp 2 vp 12 layout of the 26.02 containers,
# moe_a2a_overlap in scripts/performance/configs/qwen3/workload_base_configs.py of 2025-11; the
# Llama 3 8B recipe recomputes its first 5 transformer blocks, recompute_num_layers 5 with the
# block method in scripts/performance/configs/llama3/workload_base_configs.py and
# utils/helpers.py of 2025-11, hence --recompute-unit block --recompute-blocks 5; the Llama 3
# 70B SFT row fine-tunes on 4096-token sequences, packed and padded to that length, planned
# here as whole 4096-token sequences; the DeepSeek-V3 row of the 25.09 container is FP8 with
# blockwise scaling, and its recipe, DEEPSEEK_V3_H100_BASE_CONFIG in
# scripts/performance/configs/deepseek/workload_base_configs.py of Megatron-Bridge v0.2.0,
# folds the expert group over the tensor ranks, overlaps the all-to-all, dispatches with
# DeepEP (--moe-dispatcher flex) and recomputes its mla_up_proj and mlp modules, hence --recompute all
# --recompute-unit selective --recompute-modules mla_up_proj,mlp; its H100 config in
# scripts/performance/configs/deepseek/deepseek_llm_pretrain.py of v0.2.0 trains with the
# recipe's one multi-token prediction module, mtp_num_layers 1 in recipes/deepseek/
# deepseek_v3.py, in models/deepseek-v3.json as "mtp", splits the layers as
# "Et|(tt|)*30mL", the embedding and one block, thirty chunks of two blocks (the final norm
# with the last), the module and the loss alone, hence --boundaries, and turns
# overlap_grad_reduce off, hence --overlap-grad-reduce off). Dense rows compare model TFLOP/s per GPU,
# MoE rows tokens per second per GPU (the two FLOP counts differ for them). Prints one line
# per row, then the median and worst absolute error of each group. The step search's budget
# warnings are left out (the plan is still the best split found). docs/published.md keeps
# the table and what it says.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build}/tool/pp-partition
cd "$root"
# shellcheck source=bench/published_rows.sh
source "$root/bench/published_rows.sh"
# The SFT row trains on 4096-token sequences: the 70B model at that length.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/"seq_len": 8192/"seq_len": 4096/' models/llama3-70b.json >"$tmp/llama3-70b-4k.json"

# name | measured | figure (tflops|tokens) | plan arguments
rows=(
  "Llama 3 8B, 25.11|744|tflops|models/llama3-8b.json --stages 1 --tp 1 --gpus-total 8 --global-batch 128 --micro-batch-size 1 --zero 3 --recompute all --recompute-unit block --recompute-blocks 5"
  "Llama 3 70B, 25.11|719|tflops|models/llama3-70b.json --stages 8 --tp 4 --gpus-total 64 --global-batch 128 --micro-batch-size 1 --virtual-stages 5 --schedule interleaved --zero 1"
  "Llama 3 70B, 26.04.01|731|tflops|models/llama3-70b.json --stages 8 --tp 4 --gpus-total 64 --global-batch 256 --micro-batch-size 1 --virtual-stages 5 --schedule interleaved --zero 1"
  "Llama 3 70B SFT, 26.06|710|tflops|$tmp/llama3-70b-4k.json --stages 4 --tp 4 --gpus-total 32 --global-batch 32 --micro-batch-size 1 --virtual-stages 5 --schedule interleaved --zero 1"
  "Llama 3.1 405B, 25.11|737|tflops|models/llama3.1-405b.json --stages 8 --tp 8 --cp 2 --gpus-total 1024 --global-batch 512 --micro-batch-size 1 --virtual-stages 8 --schedule interleaved --zero 1"
  "Llama 3.1 405B, 26.04.01|827|tflops|models/llama3.1-405b.json --stages 8 --tp 8 --cp 2 --gpus-total 1024 --global-batch 1536 --micro-batch-size 1 --virtual-stages 8 --schedule interleaved --zero 1"
  "Qwen3-30B-A3B ep 16, 26.06|8826|tokens|models/qwen3-30b-a3b.json --stages 1 --tp 1 --cp 1 --ep 16 --gpus-total 16 --global-batch 1024 --micro-batch-size 1 --zero 1 --moe-dispatcher flex"
  "Qwen3-30B-A3B ep 16, 26.04.01|8960|tokens|models/qwen3-30b-a3b.json --stages 1 --tp 1 --cp 1 --ep 16 --gpus-total 16 --global-batch 1024 --micro-batch-size 1 --zero 1"
  "Qwen3-30B-A3B pp 2 vp 12 ep 8, 26.02.01|9058|tokens|models/qwen3-30b-a3b.json --stages 2 --virtual-stages 12 --schedule interleaved --tp 1 --cp 1 --ep 8 --gpus-total 16 --global-batch 1024 --micro-batch-size 1 --zero 1 --overlap-expert-comm on"
  "Qwen3-30B-A3B pp 2 vp 24 ep 8 b 2, 25.11|5275|tokens|models/qwen3-30b-a3b.json --stages 2 --virtual-stages 24 --schedule interleaved --tp 1 --cp 1 --ep 8 --gpus-total 16 --global-batch 512 --micro-batch-size 2 --zero 1"
  "Qwen3-235B-A22B tp 2 pp 8 vp 4 ep 32, 26.04.01|1712|tokens|models/qwen3-235b-a22b.json --stages 8 --virtual-stages 4 --schedule interleaved --tp 2 --ep 32 --etp 1 --gpus-total 256 --global-batch 8192 --micro-batch-size 1 --zero 1 --overlap-expert-comm on"
  "Qwen3-235B-A22B tp 2 pp 8 vp 4 ep 32, 25.11|1575|tokens|models/qwen3-235b-a22b.json --stages 8 --virtual-stages 4 --schedule interleaved --tp 2 --ep 32 --etp 1 --gpus-total 256 --global-batch 2048 --micro-batch-size 1 --zero 1 --overlap-expert-comm on"
  "DeepSeek-V3 tp 2 pp 8 vp 4 ep 64, 25.09|1297|tokens|models/deepseek-v3.json --stages 8 --virtual-stages 4 --schedule interleaved --tp 2 --ep 64 --etp 1 --gpus-total 1024 --global-batch 8192 --micro-batch-size 1 --zero 1 --overlap-expert-comm on --recompute all --recompute-unit selective --recompute-modules mla_up_proj,mlp --overlap-grad-reduce off --moe-dispatcher flex --boundaries 2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40,42,44,46,48,50,52,54,56,58,60,63"
)

printf '%-48s %10s %10s %8s\n' row measured predicted error
for row in "${rows[@]}"; do
  IFS='|' read -r name measured figure args <<<"$row"
  group=moe
  [[ $figure == tflops ]] && group=dense
  plan_row "$bin" "$group" "$name" "$measured" "$figure" "$args --device h100 --dtype fp8"
done
row_summary dense "dense (model TFLOP/s)"
row_summary moe "MoE (tokens/s)"

# The experts' all-to-all overlap against Megatron-Bridge's own measurement of it
# (docs/training/communication-overlap.md, 2026-05-18: 16 H100s, Qwen3-30B-A3B, ep 16, bf16,
# the all-to-all dispatcher; step 41.25 s without, 31.31 s with), at the recipe's layout
# (qwen3_30b_a3b_pretrain_16gpu_h100_bf16_config: global batch 1024, micro-batch 1).
overlap_args="models/qwen3-30b-a3b.json --stages 1 --tp 1 --ep 16 --gpus-total 16 --global-batch 1024 --micro-batch-size 1 --zero 1 --device h100 --dtype bf16"
step() {  # step on|off: the predicted time per batch in s
  # shellcheck disable=SC2086
  "$bin" plan $overlap_args --overlap-expert-comm "$1" 2>/dev/null |
    sed -nE 's/^time per batch +([0-9.]+) ms.*/\1/p' | awk '{ printf "%.2f", $1 / 1000 }'
}
off=$(step off) on=$(step on)
awk -v off="$off" -v on="$on" 'BEGIN {
  printf "experts'"'"' all-to-all overlap, Qwen3-30B-A3B ep 16 bf16: measured 41.25 -> 31.31 s (9.94 s less), predicted %.2f -> %.2f s (%.2f s less)\n", off, on, off - on }'
