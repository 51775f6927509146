#!/usr/bin/env bash
# Installs the Debian packages einsim builds against, only those that are missing.
set -euo pipefail
pkgs=(cmake make g++ clang pkg-config libtomlplusplus-dev libeigen3-dev libfmt-dev libcli11-dev
      nlohmann-json3-dev catch2 libbenchmark-dev libsqlite3-dev libsystemc-dev gnuplot-nox
      libopenmpi-dev openmpi-bin)
pkgs+=(libclang-rt-14-dev clang-tidy)
# The Python package and its tests (python/, docs/PYTHON.md).
pkgs+=(python3-dev pybind11-dev python3-pybind11 python3-pytest python3-jsonschema python3-pandas)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "install-deps: installing ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
