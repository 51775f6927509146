#!/usr/bin/env bash
# `mpirun -np 2 einsim sweep --mpi` stores exactly what the threaded sweep stores, and resumes.
# Usage: mpi_test.sh EINSIM MPIEXEC SPEC...
set -euo pipefail
einsim=$1 mpiexec=$2
shift 2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# In containers the shared-memory transport's single-copy mode (CMA) is often not permitted.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
extra=(--oversubscribe)
[[ $(id -u) -eq 0 ]] && extra+=(--allow-run-as-root)
for spec in "$@"; do
  name=$(basename "$spec" .toml)
  "$mpiexec" "${extra[@]}" -np 2 "$einsim" sweep "$spec" --mpi --db "$dir/$name-mpi.sqlite" > "$dir/out"
  grep -q "0 already stored" "$dir/out" || { cat "$dir/out"; exit 1; }
  "$einsim" sweep "$spec" --db "$dir/$name.sqlite" --jobs 2 > /dev/null
  "$einsim" export --db "$dir/$name-mpi.sqlite" > "$dir/a.csv"
  "$einsim" export --db "$dir/$name.sqlite" > "$dir/b.csv"
  cmp "$dir/a.csv" "$dir/b.csv" || { echo "MPI and threaded sweeps of $name differ"; exit 1; }
  # Rerunning under MPI evaluates nothing.
  "$mpiexec" "${extra[@]}" -np 2 "$einsim" sweep "$spec" --mpi --db "$dir/$name-mpi.sqlite" > "$dir/out"
  grep -q " 0 evaluated" "$dir/out" || { cat "$dir/out"; exit 1; }
  echo "$name: MPI and threaded sweeps agree ($(($(wc -l < "$dir/a.csv") - 1)) points)"
done
