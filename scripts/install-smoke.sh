#!/usr/bin/env bash
# Install smoke test (CI): installs einsim from build dir $1 into a temporary prefix, hides the
# source tree and the build tree, and runs the installed copy from / as a new user would:
# a model step, the conversation trace served by name, the default power analysis, a C++
# program built against the exported CMake package (examples/cpp), and the Python package.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
prefix="$work/prefix"
# Hidden by renaming in place (same file system: instant, and this script keeps running).
hidden_src="$src.hidden.$$"
hidden_build="$build.hidden.$$"
restore() {
  if [[ -d "$hidden_src" ]]; then mv "$hidden_src" "$src"; fi
  if [[ -d "$hidden_build" ]]; then mv "$hidden_build" "$build"; fi
  rm -rf "$work"
}
trap restore EXIT

cmake --install "$build" --prefix "$prefix" >/dev/null
# The example is configured and built before the sources go (it is part of them).
cmake -S "$src/examples/cpp" -B "$work/example" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/example" -j "$(nproc)" >/dev/null

if [[ "$build" != "$src"/* ]]; then mv "$build" "$hidden_build"; fi
mv "$src" "$hidden_src"
unset EINSIM_DATA_DIR
cd /
held=$(strings -a "$prefix/bin/einsim" | grep -F -c "$src" || true)
if [[ "$held" != 0 ]]; then
  echo "install-smoke: the installed binary names the source folder $src ($held strings)" >&2
  exit 1
fi
set -x
"$prefix/bin/einsim" --version
test -s "$prefix/share/man/man1/einsim.1"
test -s "$prefix/share/bash-completion/completions/einsim"
"$prefix/bin/einsim" run --arch h100 --model llama-3-8b --phase decode --batch 8 --context 4k >/dev/null
served=$("$prefix/bin/einsim" serve --arch h100 --model llama-3-8b --trace conv --format json)
grep -q '"requests": 19366' <<<"$served"
"$prefix/bin/einsim" analyze power --format csv >/dev/null
"$work/example/decode_step"
# The Python package, when it was built: imported from the prefix, finding the prefix's presets.
pydir=$(find "$prefix" -type d -name einsim -path '*dist-packages*' | head -1)
if [[ -n "$pydir" ]]; then
  PYTHONPATH=$(dirname "$pydir") /usr/bin/python3 -c 'import einsim; r = einsim.run("llama-3-8b", "h100", "decode", batch=8, context="4k"); assert r["totals"]["step_s"] > 0; print(einsim.data_dir())'
fi
# Moved prefix: still found relative to the executable.
mv "$prefix" "$work/moved"
"$work/moved/bin/einsim" run --arch a100 --model llama-2-7b --phase prefill --prompt 512 >/dev/null
if [[ -n "$pydir" ]]; then
  PYTHONPATH=$(dirname "${pydir/$prefix/$work/moved}") /usr/bin/python3 -c 'import einsim; einsim.run("llama-3-8b", "h100", "decode", batch=8, context="4k")'
fi
set +x
echo "install-smoke: passed"
