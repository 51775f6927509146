#!/usr/bin/env python3
"""Whole-step measurements with PyTorch: a Llama-shaped decoder stack (Llama-3-8B's layer
shapes: hidden 4096, 32 query and 8 key/value heads of 128, SwiGLU FFN 14336, RMSNorm, RoPE, a
preallocated KV cache) timed eagerly, replayed from a CUDA graph captured by hand, and under
torch.compile(mode="reduce-overhead"); and the cost of one kernel launch eagerly and as a node
of a replayed graph. For einsim's runtime presets (pytorch-eager, cuda-graphs) and its step
model (docs/VALIDATION.md).

    python3 validate/gpu/step_bench.py OUTDIR [LAYERS] [COMPILE_BUDGET_S]

Cases: decode at batch 1, 8 and 64 over a 2048-token context; prefill of 512 and 2048 tokens
(batch 1, causal). Each is timed with CUDA events around whole steps after warm-up (median of
20). Writes OUTDIR/step_bench.csv (mode, phase, batch, tokens, context, layers, median_s,
min_s, reps, kernels: the CUDA kernels one eager step launches, from the profiler),
OUTDIR/launch.csv (the per-launch cost of a 1-element add: eager, graph replay) and
OUTDIR/step_meta.txt. torch.compile cases stop being tried once COMPILE_BUDGET_S (default
150) of compiling has passed; the rows say which ran. With more than one GPU, NCCL
all-reduces over message sizes go to OUTDIR/allreduce.csv. Exits 1 where no GPU is present.
"""
import csv
import datetime
import math
import os
import sys
import time

import cuda_timing  # beside this script


def main():
    if len(sys.argv) not in (2, 3, 4):
        sys.exit("usage: step_bench.py OUTDIR [LAYERS] [COMPILE_BUDGET_S]")
    out = sys.argv[1]
    layers = int(sys.argv[2]) if len(sys.argv) >= 3 else 8
    budget = float(sys.argv[3]) if len(sys.argv) == 4 else 150.0
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        sys.exit("step_bench: PyTorch is not installed")
    if not torch.cuda.is_available():
        print("step_bench: no CUDA GPU available", file=sys.stderr)
        sys.exit(1)
    os.makedirs(out, exist_ok=True)
    dev = torch.device("cuda")
    dt = torch.bfloat16
    torch.manual_seed(0)
    H, NQ, NKV, D, FF = 4096, 32, 8, 128, 14336
    CTX = 2048

    with open(os.path.join(out, "step_meta.txt"), "w") as f:
        f.write(f"device: {torch.cuda.get_device_name(0)}\n")
        f.write(f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat()}\n")
        f.write(f"command: python3 validate/gpu/step_bench.py OUTDIR {layers} {budget:g}\n")
        f.write(f"torch: {torch.__version__}, cuda: {torch.version.cuda}\n")
        f.write(f"model: {layers} Llama-3-8B-shaped layers (hidden {H}, heads {NQ}/{NKV}x{D}, ffn {FF}), bf16, KV cache of {CTX} tokens\n")

    def rms(x, w):
        return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5).to(x.dtype) * w

    def rope(x, cos, sin):
        a, b = x[..., : D // 2], x[..., D // 2:]
        return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            s = 0.02
            self.wqkv = torch.nn.Parameter(torch.randn(H, (NQ + 2 * NKV) * D, device=dev, dtype=dt) * s)
            self.wo = torch.nn.Parameter(torch.randn(NQ * D, H, device=dev, dtype=dt) * s)
            self.wgu = torch.nn.Parameter(torch.randn(H, 2 * FF, device=dev, dtype=dt) * s)
            self.wd = torch.nn.Parameter(torch.randn(FF, H, device=dev, dtype=dt) * s)
            self.n1 = torch.nn.Parameter(torch.ones(H, device=dev, dtype=dt))
            self.n2 = torch.nn.Parameter(torch.ones(H, device=dev, dtype=dt))

        def forward(self, x, pos, cos, sin):
            kc, vc = self.kc, self.vc  # buffers: static addresses a graph may write into
            B, T, _ = x.shape
            h = rms(x, self.n1) @ self.wqkv
            q, k, v = h.split([NQ * D, NKV * D, NKV * D], dim=-1)
            q = rope(q.view(B, T, NQ, D), cos, sin).transpose(1, 2)
            k = rope(k.view(B, T, NKV, D), cos, sin).transpose(1, 2)
            v = v.view(B, T, NKV, D).transpose(1, 2)
            if T == 1:  # decode: the new token's key and value into the cache, attend to all
                kc[:, :, pos:pos + 1] = k
                vc[:, :, pos:pos + 1] = v
                keys, values = kc[:, :, : pos + 1], vc[:, :, : pos + 1]
                causal = False
            else:
                keys, values = k, v
                causal = True
            keys = keys.repeat_interleave(NQ // NKV, dim=1)
            values = values.repeat_interleave(NQ // NKV, dim=1)
            a = F.scaled_dot_product_attention(q, keys, values, is_causal=causal)
            x = x + a.transpose(1, 2).reshape(B, T, NQ * D) @ self.wo
            g, u = (rms(x, self.n2) @ self.wgu).chunk(2, dim=-1)
            return x + (F.silu(g) * u) @ self.wd

    class Stack(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(Layer() for _ in range(layers))

        def forward(self, x, pos, cos, sin):
            for layer in self.layers:
                x = layer(x, pos, cos, sin)
            return x

    model = Stack().eval()
    rows = []
    path = os.path.join(out, "step_bench.csv")
    fields = ["mode", "phase", "batch", "tokens", "context", "layers", "median_s", "min_s", "reps", "kernels", "note"]

    def flush():
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)

    def timed(fn, reps=20, warm=3):
        return cuda_timing.timed(fn, warm, reps)

    def kernels_of(fn):
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as p:
            fn()
            torch.cuda.synchronize()
        return sum(1 for e in p.events() if e.device_type.name == "CUDA")

    cases = [("decode", 1, 1), ("decode", 8, 1), ("decode", 64, 1), ("prefill", 1, 512), ("prefill", 1, 2048)]
    compile_spent = 0.0
    for phase, batch, tokens in cases:
        for layer in model.layers:
            layer.register_buffer("kc", torch.zeros(batch, NKV, CTX + 1, D, device=dev, dtype=dt))
            layer.register_buffer("vc", torch.zeros(batch, NKV, CTX + 1, D, device=dev, dtype=dt))
        x = torch.randn(batch, tokens, H, device=dev, dtype=dt)
        pos = CTX if phase == "decode" else 0
        ang = torch.arange(tokens, device=dev, dtype=torch.float32)[:, None] + pos
        ang = ang * (1e4 ** (-torch.arange(D // 2, device=dev, dtype=torch.float32) / (D // 2)))[None, :]
        cos, sin = ang.cos().to(dt)[None, :, None, :], ang.sin().to(dt)[None, :, None, :]
        context = CTX if phase == "decode" else 0

        def step():
            with torch.no_grad():
                return model(x, pos, cos, sin)

        def add(mode, t, kernels="", note=""):
            rows.append({"mode": mode, "phase": phase, "batch": batch, "tokens": tokens, "context": context, "layers": layers,
                         "median_s": t[0], "min_s": t[1], "reps": t[2], "kernels": kernels, "note": note})
            flush()
            print(f"step_bench: {mode:8s} {phase} batch {batch} tokens {tokens}: {t[0] * 1e3:.3f} ms", flush=True)

        n = kernels_of(step)
        add("eager", timed(step), n)
        # A CUDA graph captured by hand: the same kernels, replayed with one launch.
        try:
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(2):
                    step()
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                step()
            add("graph", timed(g.replay), n)
        except Exception as e:  # noqa: BLE001 - a failed capture is a row, not the end of the run
            add("graph", (math.nan, math.nan, 0), n, f"capture failed: {type(e).__name__}")
        # torch.compile(mode="reduce-overhead"): Inductor's kernels, replayed from CUDA graphs.
        if compile_spent < budget:
            t0 = time.time()
            try:
                torch._dynamo.reset()
                compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True, dynamic=False)

                def cstep():
                    with torch.no_grad():
                        return compiled(x, pos, cos, sin)
                for _ in range(3):
                    cstep()
                torch.cuda.synchronize()
                compile_spent += time.time() - t0
                add("compiled", timed(cstep), "", f"compiled in {time.time() - t0:.1f} s")
            except Exception as e:  # noqa: BLE001
                compile_spent += time.time() - t0
                add("compiled", (math.nan, math.nan, 0), "", f"compile failed: {type(e).__name__}: {str(e)[:120]}")
        else:
            add("compiled", (math.nan, math.nan, 0), "", "skipped: compile budget spent")
        for layer in model.layers:
            layer.kc = layer.vc = None
        torch.cuda.empty_cache()

    # One kernel launch: a 1-element add, eagerly (Python dispatch + launch) and as a node of
    # a replayed graph.
    a = torch.zeros(1, device=dev)
    N = 2000

    def many():
        for _ in range(N):
            a.add_(1.0)
    eager = timed(many, reps=10, warm=2)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        many()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        many()
    graph = timed(g.replay, reps=10, warm=2)
    with open(os.path.join(out, "launch.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mode", "launches", "median_s", "min_s", "per_launch_s"])
        w.writerow(["eager", N, eager[0], eager[1], eager[0] / N])
        w.writerow(["graph", N, graph[0], graph[1], graph[0] / N])
    print(f"step_bench: one launch eager {eager[0] / N * 1e6:.2f} us, graph node {graph[0] / N * 1e6:.2f} us", flush=True)

    if torch.cuda.device_count() > 1:
        print("step_bench: more than one GPU: run NCCL all-reduces with torchrun (not in this script)", flush=True)
    else:
        with open(os.path.join(out, "step_meta.txt"), "a") as f:
            f.write("allreduce: one GPU on this machine: no NCCL all-reduce measured\n")


if __name__ == "__main__":
    main()
