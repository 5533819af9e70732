#!/usr/bin/env bash
# Predictions against NeMo's measured DGX-H100 FP8 pre-training rows of 2024:
#   bash bench/nemo_h100.sh [BUILD_DIR]
# The rows are NeMo's docs/source/performance/performance_summary.md at commit 9c5c5e9709
# (2024-09-09, "24.07 perf numbers"): the NeMo 24.07 container on DGX-H100, FP8, each row's
# GPUs, global and micro-batch, sequence length, tp, pp, cp and virtual stages, and the
# measured tokens per second per GPU. Each row is planned at that layout (`plan --device
# h100 --dtype fp8`, dp = GPUs / (tp pp cp)) with the software NeMo ran: the distributed
# optimizer (--zero 1) with its reduction and gathers overlapped (the tool's default),
# sequence parallelism with tp (the default), the input gradient's reduction under the weight
# gradient (--overlap-tp-dgrad on: the part of --tp-comm-overlap the tool models), fused
# attention and cross entropy (NeMo's GPTConfig, cross_entropy_loss_fusion = True), no
# recomputation, the blocks split evenly over the stages and chunks (--method blocks, as
# Megatron-Core of that year split them). The models are NeMo's own configurations
# (nemo/collections/llm/gpt/model/base.py and llama.py): GPT-3 5B, 20B and 175B (MLP 4h with
# GeLU, LayerNorm, biases, learned positions, the output layer tied to the embedding, the GPT-2
# vocabulary padded to 50,304; dropout 0.1 at 5B and 20B, none at 175B), and
# models/llama-7b.json (Llama 2 7B, here at its 4096 tokens), llama2-13b.json, llama2-70b.json,
# llama3-8b.json and llama3-70b.json; the Nemotron rows NeMo's nemotron.py of that commit:
# Nemotron-3 8B and 22B (multi-head attention) and models/nemotron4-340b.json (8 key/value
# heads), all with LayerNorm, a squared-ReLU MLP of 4h (one TorchScript-fused kernel, as the
# tool costs it), no biases, rotary positions, untied embeddings, dropout 0 and a 256,000-
# token vocabulary (the Nemotron-4 reports'; NeMo-Framework-Launcher's
# conf/training/nemotron/nemotron_340b.yaml names its tokenizer nemotron_2_256k.model, and the
# 8B and 22B configs leave it to the user: assumed the same). The table's
# TFLOP/s use NeMo's own count, so the rows compare tokens per second per GPU, which needs
# none. The 340B row is planned without the memory limit: the tool puts its first device
# over 80 GB (docs/published.md).
# Prints one line per row, then the median and worst absolute error; then the same for the
# long-sequence rows (below). docs/published.md keeps the tables and what they say.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build}/tool/pp-partition
cd "$root"
# shellcheck source=bench/published_rows.sh
source "$root/bench/published_rows.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gpt3() {  # gpt3 NAME LAYERS HIDDEN HEADS DROPOUT
  cat >"$tmp/$1.json" <<JSON
{"format": "pp-partition.model/v1", "name": "$1", "dtype": "bf16",
 "input": {"micro_batch_size": 1, "seq_len": 2048},
 "layers": [
  {"name": "embed", "op": "embedding", "vocab": 50304, "hidden": $3, "positions": 2048},
  {"name": "block", "op": "transformer_block", "hidden": $3, "heads": $4, "ffn": $((4 * $3)),
   "norm": "layernorm", "mlp": "gelu", "bias": true, "causal": true, "rotary": false,
   "dropout": $5, "repeat": $2},
  {"name": "ln_f", "op": "layernorm", "hidden": $3},
  {"name": "lm_head", "op": "linear", "in": $3, "out": 50304, "bias": false, "tied_to": "embed"},
  {"name": "loss", "op": "cross_entropy"}]}
JSON
}
# Llama 2 7B at its 4096-token context (models/llama-7b.json holds it at LLaMA's 2048).
sed 's/"seq_len": 2048/"seq_len": 4096/' models/llama-7b.json >"$tmp/llama2-7b.json"
nemotron3() {  # nemotron3 NAME LAYERS HIDDEN HEADS
  cat >"$tmp/$1.json" <<JSON
{"format": "pp-partition.model/v1", "name": "$1", "dtype": "bf16",
 "input": {"micro_batch_size": 1, "seq_len": 4096},
 "layers": [
  {"name": "embed", "op": "embedding", "vocab": 256000, "hidden": $3},
  {"name": "block", "op": "transformer_block", "hidden": $3, "heads": $4, "ffn": $((4 * $3)),
   "norm": "layernorm", "mlp": "relu2", "bias": false, "causal": true, "rotary": true,
   "repeat": $2},
  {"name": "norm", "op": "layernorm", "hidden": $3},
  {"name": "lm_head", "op": "linear", "in": $3, "out": 256000, "bias": false},
  {"name": "loss", "op": "cross_entropy"}]}
JSON
}
nemotron3 nemotron3-8b 32 4096 32
nemotron3 nemotron3-22b 40 6144 48
gpt3 gpt3-5b 24 4096 32 0.1
gpt3 gpt3-20b 44 6144 48 0.1
gpt3 gpt3-175b 96 12288 96 0

# name | measured tokens/s/GPU | plan arguments (the model, then the row's layout)
rows=(
  "GPT-3 5B, 64 GPUs|23406|$tmp/gpt3-5b.json --stages 1 --tp 1 --gpus-total 64 --global-batch 2048 --micro-batch-size 4"
  "GPT-3 20B, 64 GPUs|5851|$tmp/gpt3-20b.json --stages 1 --tp 2 --gpus-total 64 --global-batch 256 --micro-batch-size 2"
  "GPT-3 175B, 128 GPUs|716|$tmp/gpt3-175b.json --stages 8 --tp 4 --virtual-stages 6 --schedule interleaved --gpus-total 128 --global-batch 256 --micro-batch-size 1"
  "GPT-3 175B, 512 GPUs|825|$tmp/gpt3-175b.json --stages 8 --tp 4 --virtual-stages 6 --schedule interleaved --gpus-total 512 --global-batch 2048 --micro-batch-size 2"
  "Llama 2 7B, 8 GPUs|16934|$tmp/llama2-7b.json --stages 1 --tp 1 --gpus-total 8 --global-batch 128 --micro-batch-size 1"
  "Llama 2 13B, 16 GPUs|8715|models/llama2-13b.json --stages 4 --tp 1 --virtual-stages 10 --schedule interleaved --gpus-total 16 --global-batch 128 --micro-batch-size 1"
  "Llama 2 70B, 64 GPUs|1728|models/llama2-70b.json --stages 4 --tp 4 --virtual-stages 20 --schedule interleaved --gpus-total 64 --global-batch 128 --micro-batch-size 1"
  "Nemotron-3 8B, 64 GPUs|12507|$tmp/nemotron3-8b.json --stages 1 --tp 2 --gpus-total 64 --global-batch 256 --micro-batch-size 4"
  "Nemotron-3 22B, 64 GPUs|4312|$tmp/nemotron3-22b.json --stages 4 --tp 2 --virtual-stages 10 --schedule interleaved --gpus-total 64 --global-batch 256 --micro-batch-size 2"
  "Nemotron-4 340B, 128 GPUs|326|models/nemotron4-340b.json --stages 8 --tp 8 --virtual-stages 12 --schedule interleaved --gpus-total 128 --global-batch 32 --micro-batch-size 1 --memory-limit none"
  "Llama 3 8B, 8 GPUs|12273|models/llama3-8b.json --stages 1 --tp 1 --cp 2 --gpus-total 8 --global-batch 128 --micro-batch-size 1"
  "Llama 3 70B, 64 GPUs|1524|models/llama3-70b.json --stages 4 --tp 4 --cp 2 --virtual-stages 5 --schedule interleaved --gpus-total 64 --global-batch 128 --micro-batch-size 1"
)

printf '%-48s %10s %10s %8s\n' row measured predicted error
for row in "${rows[@]}"; do
  IFS='|' read -r name measured args <<<"$row"
  software="--device h100 --dtype fp8 --zero 1 --recompute none --method blocks"
  [[ $args == *"--tp 1 "* ]] || software+=" --overlap-tp-dgrad on"
  plan_row "$bin" all "$name" "$measured" tokens "$args $software"
done
row_summary all "tokens/s per GPU"

# NeMo's long-sequence table (docs/source/performance/performance_long_sequence.md, its DGX-H100
# part, added 2024-10-21 at commit b39e679ba9): Llama 2 7B, FP8, the NeMo 24.03.01 container,
# micro-batch 1, from 4K to 1M tokens, one GPU per 1K tokens, with the tp, pp, dp and cp of its
# "with CP" columns and their TFLOP/s per GPU. It publishes no tokens per second: they are
# the TFLOP/s over NeMo's FLOPs per token of that year, 12 l h^2 (1 + g/a + 3f/2h + s/h +
# V/2lh) with the attention scores counted in full (l layers, hidden h, g/a key/value over
# query heads, MLP f, sequence s, vocabulary V), which is what the 24.07 table's own pairs of
# figures give (Llama 2 7B: 16934 tokens/s at 780 TFLOP/s, Llama 3 8B, Llama 2 70B: each
# within 0.1 %). Nor does it publish the global batch of its H100 rows; its B200 rows take
# 4,194,304 tokens a batch (512 sequences of 8K), and so do these.
echo
echo "Llama 2 7B, long sequences (NeMo 24.03.01): tp, pp, cp as published"
printf '%-48s %10s %10s %8s\n' row measured predicted error
# seq | GPUs | tp | pp | cp | measured TFLOP/s per GPU
long_rows=(
  "4096|4|1|1|1|768" "8192|8|1|2|1|730" "16384|16|2|1|1|660" "32768|32|2|1|2|610"
  "65536|64|4|1|2|574" "131072|128|4|1|4|555" "262144|256|4|1|8|549" "524288|512|8|1|16|549"
  "1048576|1024|8|1|32|536"
)
for row in "${long_rows[@]}"; do
  IFS='|' read -r seq gpus tp pp cp tflops <<<"$row"
  sed "s/\"seq_len\": 2048/\"seq_len\": $seq/" models/llama-7b.json >"$tmp/llama2-7b-$seq.json"
  measured=$(awk -v t="$tflops" -v s="$seq" 'BEGIN {
    l = 32; h = 4096; f = 11008; V = 32000
    printf "%.0f", t * 1e12 / (12 * l * h * h * (1 + 1 + 3 * f / (2 * h) + s / h + V / (2 * l * h))) }')
  args="$tmp/llama2-7b-$seq.json --stages $pp --tp $tp --cp $cp --gpus-total $gpus"
  args+=" --global-batch $((4194304 / seq)) --micro-batch-size 1"
  software="--device h100 --dtype fp8 --zero 1 --recompute none --method blocks"
  ((tp == 1)) || software+=" --overlap-tp-dgrad on"
  plan_row "$bin" long "$((seq / 1024))K, tp $tp pp $pp cp $cp, $gpus GPUs" "$measured" tokens \
    "$args $software"
done
row_summary long "tokens/s per GPU"
