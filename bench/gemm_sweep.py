#!/usr/bin/env python3
"""Measures matrix products and the host's cost per eager kernel on the GPU machine.

    python3 bench/gemm_sweep.py -o OUT.json

For each product shape [m x k] . [k x n] (a grid of m, n and k, and the expert products of
the mixture-of-experts models in models/), in bf16 and, where torch has it, fp8 (e4m3
operands, bf16 output, per-tensor scales: torch._scaled_mm): the time of one product,
measured by replaying a CUDA graph of back to back products (no host gaps) between device
events, the median of 7 replays after a warm-up, with enough input sets in rotation that they
do not fit in the L2 cache. Inputs are fresh normal random numbers, never zeros.

Then the host's cost of eager kernels, for the efficiency model's per-kernel overheads: the
wall time per call of a chain of tiny eager additions (host bound), and of a tiny linear
layer's forward and backward through autograd, each the median of 7 runs.

The JSON holds the card, driver, torch version and date beside every figure.
"""
import argparse
import datetime
import json
import math
import statistics
import subprocess
import time

import torch

L2_BYTES = 60 << 20  # the H100/H200 L2 is 50-60 MB: rotate through at least 4x that


def median_replay_ms(graph, reps, repeats=7):
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / reps)
    return statistics.median(times)


def product_ms(m, n, k, dtype):
    """One product's median time in a graph of back-to-back products, or None if unsupported."""
    dev = "cuda"
    elem = 1 if dtype == "fp8" else 2
    set_bytes = (m * k + k * n) * elem + m * n * 2
    sets = max(1, min(32, math.ceil(4 * L2_BYTES / set_bytes)))
    a, b, c = [], [], []
    for _ in range(sets):
        x = torch.randn(m, k, device=dev)
        y = torch.randn(n, k, device=dev)  # [n, k] row major = the [k, n] operand column major
        if dtype == "fp8":
            a.append(x.to(torch.float8_e4m3fn))
            b.append(y.to(torch.float8_e4m3fn).t())
        else:
            a.append(x.to(torch.bfloat16))
            b.append(y.to(torch.bfloat16).t())
        c.append(torch.empty(m, n, device=dev, dtype=torch.bfloat16))
    one = torch.ones((), device=dev, dtype=torch.float32)

    def op(i):
        if dtype == "fp8":
            c[i] = torch._scaled_mm(a[i], b[i], scale_a=one, scale_b=one,
                                    out_dtype=torch.bfloat16)
        else:
            torch.matmul(a[i], b[i], out=c[i])

    try:
        for i in range(sets):  # warm-up outside the graph: library handles, heuristics
            op(i)
        torch.cuda.synchronize()
    except (RuntimeError, TypeError):
        return None
    # Enough products per replay for about 10 ms, at least 2 rounds of the sets.
    t0 = time.perf_counter()
    for i in range(sets):
        op(i)
    torch.cuda.synchronize()
    per = max((time.perf_counter() - t0) / sets, 1e-6)
    reps = int(min(2000, max(2 * sets, 0.01 / per)))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.stream(stream):
        with torch.cuda.graph(graph, stream=stream):
            for r in range(reps):
                op(r % sets)
    torch.cuda.synchronize()
    graph.replay()  # warm
    torch.cuda.synchronize()
    ms = median_replay_ms(graph, reps)
    del graph
    return ms


def median_wall_us(run, calls, repeats=7):
    """The median over `repeats` of run()'s wall time per call, in microseconds, after one
    untimed run; run() makes `calls` calls and synchronises."""
    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times)


def host_costs():
    dev = "cuda"
    out = {}
    x = torch.randn(16, device=dev)
    y = torch.randn(16, device=dev)
    z = torch.empty(16, device=dev)
    n = 20000

    def adds():
        for _ in range(n):
            torch.add(x, y, out=z)
        torch.cuda.synchronize()

    out["eager_add_us_per_kernel"] = median_wall_us(adds, n)

    lin = torch.nn.Linear(64, 64, device=dev, dtype=torch.bfloat16)
    inp = torch.randn(8, 64, device=dev, dtype=torch.bfloat16, requires_grad=True)
    iters = 2000

    def linear_steps():
        for _ in range(iters):
            lin(inp).sum().backward()
        torch.cuda.synchronize()

    linear_steps()
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            lin(inp).sum().backward()
        torch.cuda.synchronize()
    kernels = sum(e.count for e in prof.key_averages() if e.device_type.name == "CUDA")
    out["tiny_linear_fwd_bwd_us"] = median_wall_us(linear_steps, iters)
    out["tiny_linear_fwd_bwd_kernels"] = kernels / 10
    out["tiny_linear_us_per_kernel"] = out["tiny_linear_fwd_bwd_us"] / max(kernels / 10, 1)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--quick", action="store_true", help="a few shapes only")
    args = parser.parse_args()
    torch.manual_seed(1)
    props = torch.cuda.get_device_properties(0)
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        driver = "?"
    result = {"card": props.name, "multiprocessors": props.multi_processor_count,
              "driver": driver, "torch": torch.__version__, "cuda": torch.version.cuda,
              "date": datetime.date.today().isoformat(),
              "method": "CUDA graph of back-to-back products, median of 7 replays, rotating inputs",
              "products": []}
    grid = [1024, 2048, 4096, 8192]
    depths = [256, 512, 1024, 2048, 4096, 8192]
    shapes = [(m, n, k) for m in grid for n in grid for k in depths]
    # Expert products (tokens x hidden x width) of models/qwen3-30b-a3b.json (hidden 2048, width
    # 768), qwen3-235b-a22b (4096, 1536), deepseek-v3 (7168, 2048), mixtral-8x7b (4096, 14336):
    # fc1 gate and up together, fc2, and their weight-gradient shapes.
    for tokens in (512, 1024, 2048, 4096, 8192):
        for h, w in ((2048, 768), (4096, 1536), (7168, 2048), (4096, 14336)):
            shapes += [(tokens, 2 * w, h), (tokens, h, w), (h, 2 * w, tokens), (w, h, tokens)]
    if args.quick:
        shapes = shapes[:6]
    seen = set()
    t_start = time.time()
    for m, n, k in shapes:
        if (m, n, k) in seen:
            continue
        seen.add((m, n, k))
        for dtype in ("bf16", "fp8"):
            ms = product_ms(m, n, k, dtype)
            if ms is None:
                continue
            tflops = 2.0 * m * n * k / (ms / 1e3) / 1e12
            result["products"].append({"m": m, "n": n, "k": k, "dtype": dtype, "ms": ms,
                                       "tflops": tflops})
        torch.cuda.empty_cache()
    result["products_seconds"] = time.time() - t_start
    result["host"] = host_costs()
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    by = {}
    for p in result["products"]:
        by.setdefault(p["dtype"], []).append(p["tflops"])
    print(f"{props.name}, driver {driver}, torch {torch.__version__}: {len(result['products'])} "
          f"products in {result['products_seconds']:.0f} s")
    for d, v in by.items():
        print(f"  {d}: best {max(v):.1f} TFLOP/s, median {statistics.median(v):.1f}")
    for key, v in result["host"].items():
        print(f"  {key}: {v:.3g}")


if __name__ == "__main__":
    main()
