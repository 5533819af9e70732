#!/usr/bin/env python3
"""The layer shapes of a pp-partition model timed in PyTorch eager (bf16 by default).

    python3 bench/torch_layers.py MODEL.json [--micro-batch-size B] [--dtype bf16|fp32]
                                  [--repeats N] [-o OUT.json]

One layer of each op in the model file (its first occurrence) is built in plain PyTorch with
the same math as pp-partition's layers (pre-norm transformer block, tanh GELU or SwiGLU, rotary
pairs (i, i + d/2)), then timed with the same protocol as the tool: warm-up, CUDA events around
each of N repeats, median and p95. Forward and backward are timed separately (backward is
PyTorch's whole backward: input and weight gradients together). The transformer block is timed
twice: attention through scaled_dot_product_attention ("transformer_block") and as explicit
math ("transformer_block_explicit": scores matmul, masked softmax, matmul), which is what
pp-partition computes. Prints and writes a JSON document keyed by op.
"""
import argparse
import json
import math
import statistics
import sys

import torch
import torch.nn.functional as F

WARMUP = 3


def summarize(samples):
    s = sorted(samples)
    rank = max(1, math.ceil(0.95 * len(s)))
    return {"median_ms": statistics.median(s), "p95_ms": s[rank - 1]}


def time_layer(make_inputs, forward, repeats):
    """make_inputs() -> fresh leaf tensors; forward(*inputs) -> output tensor."""
    fwd, bwd = [], []
    for i in range(WARMUP + repeats):
        inputs = make_inputs()
        start, mid, end = (torch.cuda.Event(enable_timing=True) for _ in range(3))
        start.record()
        out = forward(*inputs)
        mid.record()
        grad = torch.ones_like(out) if out.dim() == 0 else torch.randn_like(out)
        out.backward(grad)
        end.record()
        torch.cuda.synchronize()
        if i >= WARMUP:
            fwd.append(start.elapsed_time(mid))
            bwd.append(mid.elapsed_time(end))
    f, b = summarize(fwd), summarize(bwd)
    return {"forward_ms": f["median_ms"], "forward_p95_ms": f["p95_ms"],
            "backward_ms": b["median_ms"], "backward_p95_ms": b["p95_ms"],
            "total_ms": f["median_ms"] + b["median_ms"]}


def rotary(x, seq, d):
    # x: (b, heads, s, d); pairs (i, i + d/2) turn by pos / 10000^(2i/d).
    half = d // 2
    pos = torch.arange(seq, device=x.device, dtype=torch.float64)[:, None]
    inv = torch.pow(10000.0, -2.0 * torch.arange(half, device=x.device, dtype=torch.float64) / d)
    theta = pos * inv
    c, s = torch.cos(theta).to(x.dtype), torch.sin(theta).to(x.dtype)
    x0, x1, rest = x[..., :half], x[..., half:2 * half], x[..., 2 * half:]
    return torch.cat([x0 * c - x1 * s, x1 * c + x0 * s, rest], dim=-1)


class Block(torch.nn.Module):
    def __init__(self, spec, explicit):
        super().__init__()
        h, f = spec["hidden"], spec["ffn"]
        self.heads, self.explicit = spec["heads"], explicit
        self.causal, self.rotary = spec.get("causal", False), spec.get("rotary", False)
        self.rms = spec.get("norm", "layernorm") == "rmsnorm"
        self.mlp = spec.get("mlp", "gelu")
        self.swiglu = self.mlp in ("swiglu", "geglu")  # gated: gate and up
        bias = spec.get("bias", True)
        self.n1 = torch.nn.RMSNorm(h, eps=1e-5) if self.rms else torch.nn.LayerNorm(h, eps=1e-5)
        self.n2 = torch.nn.RMSNorm(h, eps=1e-5) if self.rms else torch.nn.LayerNorm(h, eps=1e-5)
        self.qkv = torch.nn.Linear(h, 3 * h, bias=bias)
        self.o = torch.nn.Linear(h, h, bias=bias)
        self.w1 = torch.nn.Linear(h, f, bias=bias)
        self.wu = torch.nn.Linear(h, f, bias=bias) if self.swiglu else None
        self.w2 = torch.nn.Linear(f, h, bias=bias)

    def attention(self, x):
        b, s, h = x.shape
        d = h // self.heads
        q, k, v = self.qkv(self.n1(x)).split(h, dim=-1)
        q, k, v = (t.view(b, s, self.heads, d).transpose(1, 2) for t in (q, k, v))
        if self.rotary:
            q, k = rotary(q, s, d), rotary(k, s, d)
        if self.explicit:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)
            if self.causal:
                mask = torch.ones(s, s, device=x.device, dtype=torch.bool).triu(1)
                scores = scores.masked_fill(mask, float("-inf"))
            out = torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.o(out.transpose(1, 2).reshape(b, s, h))

    def forward(self, x):
        h1 = x + self.attention(x)
        z = self.n2(h1)
        if self.mlp == "geglu":
            m = F.gelu(self.w1(z), approximate="tanh") * self.wu(z)
        elif self.swiglu:
            m = F.silu(self.w1(z)) * self.wu(z)
        elif self.mlp == "relu2":
            m = torch.square(F.relu(self.w1(z)))
        else:
            m = F.gelu(self.w1(z), approximate="tanh")
        return h1 + self.w2(m)


def measure(model, mbs, dtype, repeats):
    dev = torch.device("cuda")
    inp = model["input"]
    b = mbs or inp["micro_batch_size"]
    s = inp.get("seq_len", 1)
    rows = b * s
    results = {}
    width = None
    for spec in model["layers"]:
        op = spec["op"]
        if op in ("embedding",):
            width = spec["hidden"]
        elif op == "linear":
            width = spec["out"]
        elif op in ("layernorm", "rmsnorm", "transformer_block"):
            width = spec["hidden"]
        if op in results:
            continue
        if op == "embedding":
            emb = torch.nn.Embedding(spec["vocab"], spec["hidden"], device=dev, dtype=dtype)
            pos = (torch.nn.Embedding(spec["positions"], spec["hidden"], device=dev, dtype=dtype)
                   if spec.get("positions") else None)
            ids = torch.randint(0, spec["vocab"], (b, s), device=dev)
            where = torch.arange(s, device=dev)
            fwd = (lambda: emb(ids) + pos(where)) if pos is not None else (lambda: emb(ids))
            results[op] = time_layer(lambda: (), fwd, repeats)
        elif op == "transformer_block":
            for explicit, key in ((False, op), (True, op + "_explicit")):
                blk = Block(spec, explicit).to(dev, dtype)
                results[key] = time_layer(
                    lambda: (torch.randn(b, s, spec["hidden"], device=dev, dtype=dtype,
                                         requires_grad=True),), blk, repeats)
        elif op in ("layernorm", "rmsnorm"):
            norm = (torch.nn.RMSNorm if op == "rmsnorm" else torch.nn.LayerNorm)(
                spec["hidden"], eps=1e-5).to(dev, dtype)
            results[op] = time_layer(
                lambda: (torch.randn(rows, spec["hidden"], device=dev, dtype=dtype,
                                     requires_grad=True),), norm, repeats)
        elif op == "linear":
            lin = torch.nn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True)).to(dev, dtype)
            results[op] = time_layer(
                lambda: (torch.randn(rows, spec["in"], device=dev, dtype=dtype,
                                     requires_grad=True),), lin, repeats)
        elif op == "cross_entropy":
            labels = torch.randint(0, width, (rows,), device=dev)
            results[op] = time_layer(
                lambda: (torch.randn(rows, width, device=dev, dtype=dtype, requires_grad=True),),
                lambda x: F.cross_entropy(x.float(), labels), repeats)
        elif op in ("relu", "gelu"):
            act = F.relu if op == "relu" else (lambda x: F.gelu(x, approximate="tanh"))
            results[op] = time_layer(
                lambda: (torch.randn(rows, width, device=dev, dtype=dtype, requires_grad=True),),
                act, repeats)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--micro-batch-size", type=int, default=0)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("-o", "--output")
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("torch_layers.py: no CUDA GPU visible to PyTorch", file=sys.stderr)
        return 1
    with open(a.model) as f:
        model = json.load(f)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = False
    doc = {"model": model["name"], "device": torch.cuda.get_device_name(0),
           "torch": torch.__version__, "dtype": a.dtype,
           "micro_batch_size": a.micro_batch_size or model["input"]["micro_batch_size"],
           "layers": measure(model, a.micro_batch_size, dtype, a.repeats)}
    text = json.dumps(doc, indent=2)
    print(text)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
