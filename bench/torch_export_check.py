"""Checks that torch.distributed.pipelining accepts pp-partition's `export --to torch` output.

Usage: python3 bench/torch_export_check.py MODEL.json SNIPPET.py [SNIPPET.py ...]

Builds a small torch module whose module names are the model file's layer names (an embedding
`embed`, blocks `block.0` ... in a ModuleList `block`, `ln_f`, `lm_head`), runs each exported
snippet to get `split_spec` and `num_stages`, traces the module with `pipeline()` and checks
that the pipe has the plan's stage count. Prints one line per snippet; exits 1 on a mismatch.
Needs PyTorch (the GPU machine has it); runs on the CPU.
"""
import json
import sys

import torch
from torch import nn
from torch.distributed.pipelining import pipeline


class Block(nn.Module):
    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class Model(nn.Module):
    """Layers named as in the model file, so the exported split points resolve."""

    def __init__(self, spec):
        super().__init__()
        layers = spec["layers"]
        embed = next(l for l in layers if l["op"] == "embedding")
        block = next(l for l in layers if l["op"] == "transformer_block")
        self.embed = nn.Embedding(embed["vocab"], embed["hidden"])
        self.block = nn.ModuleList(
            Block(block["hidden"], block["heads"], block["ffn"]) for _ in range(block.get("repeat", 1)))
        self.ln_f = nn.LayerNorm(block["hidden"])
        self.lm_head = nn.Linear(block["hidden"], embed["vocab"], bias=False)

    def forward(self, tokens):
        x = self.embed(tokens)
        for b in self.block:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def main():
    spec = json.load(open(sys.argv[1]))
    model = Model(spec)
    example = torch.randint(0, model.embed.num_embeddings, (2, spec["input"]["seq_len"]))
    failures = 0
    for path in sys.argv[2:]:
        scope = {}
        exec(open(path).read(), scope)
        pipe = pipeline(model, mb_args=(example,), split_spec=scope["split_spec"])
        ok = pipe.num_stages == scope["num_stages"]
        failures += not ok
        print(f"{path}: pipeline() gave {pipe.num_stages} stages, plan has {scope['num_stages']}: "
              f"{'ok' if ok else 'MISMATCH'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
