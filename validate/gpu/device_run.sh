#!/bin/sh
# The whole GPU session of docs/VALIDATION.md ("Measured on GPUs"), one prepared script for a
# machine lent for minutes: kbench (cuBLASLt GEMMs, the fused and 3-pass attention, decode
# attention, HBM copy and triad, pinned copies) and its attention check, the sustained-power
# phases, and the whole-step harness (eager, CUDA graph, torch.compile). Each part has its own
# time limit and its own folder, so a part that fails or runs out leaves the others' results.
#
#   sh validate/gpu/device_run.sh OUTDIR
#
# KBENCH=path uses a kbench built beforehand (nvcc -O3 -std=c++17 -arch=sm_90 -o kbench
# validate/kbench/kbench.cu -lcublas -lcublasLt); otherwise run_kbench.sh builds it here.
set -u
out=${1:?usage: device_run.sh OUTDIR}
mkdir -p "$out"
log="$out/log.txt"
part() {  # part NAME LIMIT_S COMMAND...
  name=$1 limit=$2
  shift 2
  t0=$(date +%s)
  echo "== $name (limit ${limit}s) $(date -u +%H:%M:%S)" | tee -a "$log"
  timeout "$limit" "$@" >> "$log" 2>&1
  rc=$?
  echo "== $name: exit $rc after $(( $(date +%s) - t0 )) s" | tee -a "$log"
}
nvidia-smi -q > "$out/nvidia-smi-q.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,clocks.max.mem --format=csv > "$out/nvidia-smi.csv" 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" > "$out/versions.txt" 2>&1
nvcc --version >> "$out/versions.txt" 2>&1
if [ -n "${KBENCH:-}" ] && ! ldd "$KBENCH" | grep -q "not found"; then :; else unset KBENCH; fi
part kbench "${KBENCH_LIMIT:-215}" env KBENCH_TIMEOUT="${KBENCH_SWEEP:-150}" sh validate/gpu/run_kbench.sh "$out/kbench"
part power "${POWER_LIMIT:-70}" python3 validate/gpu/power_bench.py "$out/power" 5
part step "${STEP_LIMIT:-215}" python3 validate/gpu/step_bench.py "$out/step" 8 100
echo "done $(date -u +%H:%M:%S)" >> "$log"
