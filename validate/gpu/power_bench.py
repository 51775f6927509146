#!/usr/bin/env python3
"""Sustained-power measurements for einsim's power model, with PyTorch (a GPU host may have
PyTorch and nothing else). Each phase keeps one kind of work running for several seconds while
nvidia-smi samples power every 100 ms; the phase's mean power (the samples inside it, less the
first half second) goes beside the work it did per second:

  idle                nothing launched
  gemm_bf16_8192      bf16 8192^3 matmuls back to back (compute-bound: tensor cores at speed)
  gemm_bf16_4096      bf16 4096^3
  copy_2GiB           device-to-device copies of 2 GiB (HBM-bound, no arithmetic)
  gemv_bf16_8192      bf16 batch-1 GEMVs over a 8192 x 28672 weight (decode-like, HBM-bound)
  prefill_like        bf16 (4096 x 8192) x (8192 x 28672) matmuls (a prefill projection)

    python3 validate/gpu/power_bench.py OUTDIR [SECONDS_PER_PHASE]

writes OUTDIR/power_bench.csv (phase, seconds, flops_per_s, bytes_per_s, mean_power_w,
samples, mean_sm_clock_mhz), OUTDIR/power_samples.csv (every sample) and OUTDIR/meta.txt.
From it: energy per FLOP = (P_gemm - P_idle - e_byte x its bytes/s) / its FLOP/s, energy per
byte = (P_copy - P_idle) / its bytes/s. Exits 1 with a clear message where no GPU is present.
"""
import datetime
import os
import subprocess
import sys
import threading
import time


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: power_bench.py OUTDIR [SECONDS_PER_PHASE]")
    out = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) == 3 else 6.0
    try:
        import torch
    except ImportError:
        sys.exit("power_bench: PyTorch is not installed")
    if not torch.cuda.is_available():
        print("power_bench: no CUDA GPU available", file=sys.stderr)
        sys.exit(1)
    os.makedirs(out, exist_ok=True)
    name = torch.cuda.get_device_name(0)

    samples = []  # (wall time, watts, sm clock MHz)
    stop = threading.Event()

    def sampler():
        proc = subprocess.Popen(["nvidia-smi", "--query-gpu=power.draw,clocks.sm", "--format=csv,noheader,nounits", "-lms", "100"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in proc.stdout:
            if stop.is_set():
                break
            try:
                w, mhz = (float(x) for x in line.strip().split(","))
            except ValueError:
                continue
            samples.append((time.time(), w, mhz))
        proc.terminate()

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    time.sleep(1.0)

    dev = torch.device("cuda")
    bf16 = torch.bfloat16
    phases = []

    def run(name_, fn, flops, nbytes):
        fn()
        torch.cuda.synchronize()
        t0 = time.time()
        n = 0
        while time.time() - t0 < seconds:
            for _ in range(4):
                fn()
            torch.cuda.synchronize()
            n += 4
        t1 = time.time()
        dt = t1 - t0
        phases.append((name_, t0, t1, flops * n / dt, nbytes * n / dt))

    # idle
    t0 = time.time()
    time.sleep(seconds)
    phases.append(("idle", t0, time.time(), 0.0, 0.0))

    for n_ in (8192, 4096):
        a = torch.randn(n_, n_, device=dev, dtype=bf16)
        b = torch.randn(n_, n_, device=dev, dtype=bf16)
        run(f"gemm_bf16_{n_}", lambda: torch.matmul(a, b), 2.0 * n_ ** 3, 3.0 * n_ * n_ * 2)
        del a, b
    src = torch.empty(2 << 30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    run("copy_2GiB", lambda: dst.copy_(src), 0.0, 2.0 * src.numel())
    del src, dst
    w = torch.randn(8192, 28672, device=dev, dtype=bf16)
    x = torch.randn(1, 8192, device=dev, dtype=bf16)
    run("gemv_bf16_8192", lambda: torch.matmul(x, w), 2.0 * 8192 * 28672, 2.0 * 8192 * 28672)
    xp = torch.randn(4096, 8192, device=dev, dtype=bf16)
    run("prefill_like", lambda: torch.matmul(xp, w), 2.0 * 4096 * 8192 * 28672, 2.0 * (4096 * 8192 + 8192 * 28672 + 4096 * 28672))
    time.sleep(0.5)
    stop.set()
    th.join(timeout=5)

    with open(os.path.join(out, "power_samples.csv"), "w") as f:
        f.write("time_s,power_w,sm_clock_mhz\n")
        for t, w_, mhz in samples:
            f.write(f"{t:.3f},{w_},{mhz}\n")
    with open(os.path.join(out, "power_bench.csv"), "w") as f:
        f.write(f"# device: {name}; {datetime.date.today()}; python3 validate/gpu/power_bench.py OUTDIR {seconds}\n")
        f.write("phase,seconds,flops_per_s,bytes_per_s,mean_power_w,samples,mean_sm_clock_mhz\n")
        for ph, t0, t1, fl, by in phases:
            inside = [(w_, mhz) for t, w_, mhz in samples if t0 + 0.5 <= t <= t1]
            p = sum(w_ for w_, _ in inside) / len(inside) if inside else float("nan")
            c = sum(m for _, m in inside) / len(inside) if inside else float("nan")
            f.write(f"{ph},{t1 - t0:.3f},{fl:.6g},{by:.6g},{p:.2f},{len(inside)},{c:.0f}\n")
    with open(os.path.join(out, "meta.txt"), "w") as f:
        f.write(f"device: {name}\ndate: {datetime.datetime.utcnow().isoformat()}Z\n")
        f.write(f"command: python3 validate/gpu/power_bench.py OUTDIR {seconds}\ntorch: {torch.__version__}\n")
    print(open(os.path.join(out, "power_bench.csv")).read())


if __name__ == "__main__":
    main()
