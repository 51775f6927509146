#!/usr/bin/env python3
"""power_bench.csv's steady phases as rows of einsim's kernel CSV, so that `einsim validate`
predicts each phase's time per call and its power (docs/VALIDATION.md):

    python3 validate/gpu/power_to_kernels.py power_bench.csv power_kernels.csv

Each phase ran one operation back to back for seconds; its time per call is the operation's
FLOPs (or bytes, for the copy) over the phase's measured rate, and its power the mean of the
samples inside the phase (nvidia-smi averages power over about a second, so only these long
phases give a kernel's power; kbench's 0.2 s holds do not). The idle phase has no kernel.
"""
import csv
import sys

# phase -> (kind, op, dtype, m, n, k): the operation power_bench.py runs in it.
PHASES = {
    "gemm_bf16_8192": ("gemm", "matmul", "bf16", 8192, 8192, 8192),
    "gemm_bf16_4096": ("gemm", "matmul", "bf16", 4096, 4096, 4096),
    "gemv_bf16_8192": ("gemm", "matmul", "bf16", 1, 28672, 8192),
    "prefill_like": ("gemm", "matmul", "bf16", 4096, 28672, 8192),
    "copy_2GiB": ("memory", "copy", "fp32", (2 << 30) // 4, 0, 0),  # 2 GiB of bytes, as fp32 elements
}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: power_to_kernels.py power_bench.csv OUT.csv")
    rows = [r for r in csv.DictReader(line for line in open(sys.argv[1]) if not line.startswith("#"))]
    header = open(sys.argv[1]).readline().strip()
    with open(sys.argv[2], "w", newline="") as f:
        f.write(f"# from {sys.argv[1].split('/')[-1]} ({header.lstrip('# ')}) by validate/gpu/power_to_kernels.py\n")
        w = csv.writer(f)
        w.writerow(["kind", "op", "dtype", "m", "n", "k", "batch", "heads", "seq", "kv", "bytes", "flops", "median_s", "min_s", "reps", "power_w",
                    "sm_clock_mhz"])
        for r in rows:
            if r["phase"] not in PHASES:
                continue
            kind, op, dtype, m, n, k = PHASES[r["phase"]]
            if kind == "gemm":
                flops = 2.0 * m * n * k
                nbytes = 2.0 * (m * k + k * n + m * n)
                seconds = flops / float(r["flops_per_s"])
            else:
                nbytes = 8.0 * m  # read and written
                flops = 0.0
                seconds = nbytes / float(r["bytes_per_s"])
            w.writerow([kind, op, dtype, m, n, k, 0, 0, 0, 0, f"{nbytes:.6g}", f"{flops:.6g}", f"{seconds:.6g}", f"{seconds:.6g}", 0,
                        r["mean_power_w"], r["mean_sm_clock_mhz"]])


if __name__ == "__main__":
    main()
