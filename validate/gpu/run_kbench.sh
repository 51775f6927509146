#!/bin/sh
# One prepared device run: builds kbench with nvcc alone (sm_90, CUDA toolkit only; or uses
# KBENCH=path/to/kbench built beforehand) and runs the whole sweep and the attention check,
# leaving everything under OUTDIR (kbench.csv, attention dumps, nvidia-smi -q).
#
#   sh validate/gpu/run_kbench.sh OUTDIR
#
# KBENCH_TIMEOUT (seconds, default 480) bounds the sweep; the check gets 60 s.
set -eu
out=${1:?usage: run_kbench.sh OUTDIR}
mkdir -p "$out"
bin=${KBENCH:-}
if [ -z "$bin" ]; then
  bin="$out/kbench"
  nvcc -O3 -std=c++17 -arch=sm_90 -o "$bin" validate/kbench/kbench.cu -lcublas -lcublasLt
fi
nvidia-smi -q > "$out/nvidia-smi.txt" 2>&1 || true
timeout "${KBENCH_TIMEOUT:-480}" "$bin" "$out" || echo "run_kbench: the sweep exited $? (124: its time limit; kbench.csv holds what it wrote)"
mkdir -p "$out/check"
timeout 60 "$bin" --check "$out/check" || echo "run_kbench: the check exited $?"
[ -n "${KBENCH:-}" ] || rm -f "$out/kbench"
