#!/usr/bin/env python3
"""GPU measurements for einsim's validation, with PyTorch (a GPU host may have PyTorch and
nothing else). Times GEMMs (bf16, fp16, fp8 where the GPU has it) over square and LLM
projection shapes, HBM copy and triad, row-wise softmax and layer norm, attention (prefill and
decode, PyTorch's fused scaled_dot_product_attention) and pinned host<->device copies, with
CUDA events after warm-up (median of repeats), while nvidia-smi samples power and SM clock.

    python3 validate/gpu/torch_bench.py OUTDIR

writes OUTDIR/torch_bench.csv (one row per measurement), OUTDIR/meta.txt (device, driver,
clocks, versions, command, date) and OUTDIR/power.csv (the samples). Exits 1 with a clear
message where no GPU is present.
"""
import datetime
import os
import subprocess
import sys

import cuda_timing  # beside this script


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: torch_bench.py OUTDIR")
    out = sys.argv[1]
    try:
        import torch
    except ImportError:
        sys.exit("torch_bench: PyTorch is not installed")
    if not torch.cuda.is_available():
        print("torch_bench: no CUDA GPU available", file=sys.stderr)
        sys.exit(1)
    os.makedirs(out, exist_ok=True)
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)

    def smi(query):
        try:
            return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except Exception as e:  # noqa: BLE001 - the metadata is best effort
            return f"unavailable ({e})"

    with open(os.path.join(out, "meta.txt"), "w") as f:
        f.write(f"device: {name}\n")
        f.write(f"date: {datetime.datetime.utcnow().isoformat()}Z\n")
        f.write(f"command: python3 validate/gpu/torch_bench.py OUTDIR\n")
        f.write(f"torch: {torch.__version__}, cuda: {torch.version.cuda}, cudnn: {torch.backends.cudnn.version()}\n")
        f.write(f"nvidia-smi: {smi('name,driver_version,memory.total,power.limit,clocks.max.sm,clocks.max.mem,clocks.sm')}\n")
        p = torch.cuda.get_device_properties(0)
        f.write(f"sms: {p.multi_processor_count}, memory: {p.total_memory}, capability: {p.major}.{p.minor}\n")

    power = subprocess.Popen(["nvidia-smi", "--query-gpu=timestamp,power.draw,clocks.sm,clocks.mem,temperature.gpu",
                              "--format=csv,noheader", "-lms", "200"], stdout=open(os.path.join(out, "power.csv"), "w"),
                             stderr=subprocess.DEVNULL)
    rows = []

    def timed(fn, warm=5, reps=30):
        return cuda_timing.timed(fn, warm, reps)

    def record(kind, op, dtype, fn, flops=0.0, nbytes=0.0, **shape):
        try:
            med, lo, reps = timed(fn)
        except Exception as e:  # noqa: BLE001 - a shape the library refuses is recorded, not fatal
            print(f"skip {kind} {op} {dtype} {shape}: {e}", file=sys.stderr)
            return
        row = {"kind": kind, "op": op, "dtype": dtype, "m": 0, "n": 0, "k": 0, "batch": 0, "heads": 0, "seq": 0, "kv": 0,
               "bytes": nbytes, "flops": flops, "median_s": med, "min_s": lo, "reps": reps}
        row.update(shape)
        rows.append(row)
        rate = f"{flops / med / 1e12:.1f} TFLOP/s" if flops else f"{nbytes / med / 1e9:.0f} GB/s"
        print(f"{kind:10} {op:12} {dtype:5} {shape} {med * 1e6:10.1f} us  {rate}", flush=True)

    # GEMMs: Z[m,n] = A[m,k] B[k,n].
    squares = [(s, s, s) for s in (512, 1024, 2048, 4096, 8192)]
    llm = []
    for tokens in (1, 16, 64, 256, 1024, 4096):
        # Llama-2-7B: QKV, O, gate+up, down; Llama-3-70B: QKV (GQA), O, gate+up, down.
        for k, n in ((4096, 12288), (4096, 4096), (4096, 22016), (11008, 4096), (8192, 10240), (8192, 8192), (8192, 57344), (28672, 8192)):
            llm.append((tokens, n, k))
    for dtype, tname in ((torch.bfloat16, "bf16"), (torch.float16, "fp16")):
        for m, n, k in squares + llm:
            a = torch.randn(m, k, device=dev, dtype=dtype)
            b = torch.randn(k, n, device=dev, dtype=dtype)
            record("gemm", "matmul", tname, lambda: torch.matmul(a, b), flops=2.0 * m * n * k,
                   nbytes=2.0 * (m * k + k * n + m * n), m=m, n=n, k=k)
            del a, b
    if hasattr(torch, "float8_e4m3fn") and hasattr(torch, "_scaled_mm") and torch.cuda.get_device_capability(0) >= (8, 9):
        one = torch.tensor(1.0, device=dev)
        for m, n, k in squares + llm:
            if m % 16:
                continue
            a = torch.randn(m, k, device=dev).to(torch.float8_e4m3fn)
            b = torch.randn(n, k, device=dev).to(torch.float8_e4m3fn).t()  # column-major, as cuBLASLt wants
            record("gemm", "scaled_mm", "fp8", lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16),
                   flops=2.0 * m * n * k, nbytes=1.0 * (m * k + k * n) + 2.0 * m * n, m=m, n=n, k=k)
            del a, b

    # HBM: copy (read + write) and triad (two reads, one write).
    for mib in (64, 256, 1024, 4096):
        n = mib * 2**20 // 4
        x = torch.empty(n, device=dev, dtype=torch.float32).fill_(1)
        y = torch.empty_like(x)
        z = torch.empty_like(x)
        record("memory", "copy", "fp32", lambda: y.copy_(x), nbytes=2.0 * 4 * n, m=n)
        record("memory", "triad", "fp32", lambda: torch.add(x, y, alpha=3.0, out=z), nbytes=3.0 * 4 * n, m=n)
        del x, y, z

    # Row-wise kernels (the LLMCompass set's kinds), bf16.
    for rows_, cols in ((4096, 4096), (16384, 4096), (4096, 16384), (32768, 8192)):
        x = torch.randn(rows_, cols, device=dev, dtype=torch.bfloat16)
        record("rowwise", "softmax", "bf16", lambda: torch.softmax(x, dim=-1), nbytes=2.0 * 2 * rows_ * cols, m=rows_, n=cols)
        ln = torch.nn.LayerNorm(cols, device=dev, dtype=torch.bfloat16)
        record("rowwise", "layernorm", "bf16", lambda: ln(x), nbytes=2.0 * 2 * rows_ * cols, m=rows_, n=cols)
        del x

    # Attention: prefill (fused, no mask) and decode (one query against a KV cache).
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for batch, heads, seq in ((1, 32, 1024), (1, 32, 4096), (1, 32, 16384), (4, 32, 2048), (8, 32, 4096), (1, 64, 8192)):
        q = torch.randn(batch, heads, seq, 128, device=dev, dtype=torch.bfloat16)
        k = torch.randn_like(q)
        v = torch.randn_like(q)
        record("attention", "prefill", "bf16", lambda: sdpa(q, k, v), flops=4.0 * batch * heads * seq * seq * 128,
               nbytes=2.0 * 4 * batch * heads * seq * 128, batch=batch, heads=heads, seq=seq, kv=seq, k=128)
        del q, k, v
    for batch, kv in ((1, 4096), (1, 32768), (16, 4096), (16, 32768), (64, 8192), (64, 32768)):
        q = torch.randn(batch, 32, 1, 128, device=dev, dtype=torch.bfloat16)
        k = torch.randn(batch, 32, kv, 128, device=dev, dtype=torch.bfloat16)
        v = torch.randn_like(k)
        record("attention", "decode", "bf16", lambda: sdpa(q, k, v), flops=4.0 * batch * 32 * kv * 128,
               nbytes=2.0 * 2 * batch * 32 * kv * 128, batch=batch, heads=32, seq=1, kv=kv, k=128)
        del q, k, v

    # Host <-> device over PCIe, pinned host memory.
    for mib in (256, 1024):
        n = mib * 2**20
        host = torch.empty(n, dtype=torch.uint8).pin_memory()
        gpu = torch.empty(n, dtype=torch.uint8, device=dev)
        record("pcie", "h2d", "u8", lambda: gpu.copy_(host, non_blocking=True), nbytes=float(n), m=n)
        record("pcie", "d2h", "u8", lambda: host.copy_(gpu, non_blocking=True), nbytes=float(n), m=n)
        del host, gpu

    power.terminate()
    keys = ["kind", "op", "dtype", "m", "n", "k", "batch", "heads", "seq", "kv", "bytes", "flops", "median_s", "min_s", "reps"]
    with open(os.path.join(out, "torch_bench.csv"), "w") as f:
        f.write(f"# device: {name}; {datetime.datetime.utcnow().date()}; python3 validate/gpu/torch_bench.py OUTDIR\n")
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(str(r[k]) for k in keys) + "\n")
    print(f"{len(rows)} measurements", flush=True)


if __name__ == "__main__":
    main()
