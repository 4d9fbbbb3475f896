#!/usr/bin/env bash
# Installs every Debian package parnet needs to build, test and run its scripts.
# Idempotent: when everything is present it only checks (a few seconds) and installs nothing.
# Usage: scripts/setup.sh            (as root, or with sudo available)
set -euo pipefail

CXX_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libdnnl-dev ocl-icd-opencl-dev
  libopenmpi-dev openmpi-bin
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libspdlog-dev libcli11-dev nlohmann-json3-dev
  libonnx-dev libonnx-testdata
  libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev
  libpng-dev libjpeg62-turbo-dev
  libcpp-httplib-dev libb64-0d
)
PY_PACKAGES=(
  python3-torch python3-onnx python3-numpy python3-pytest
  python3-torchvision python3-pil python3-venv
  libopenblas0-pthread dataset-fashion-mnist
)

missing=()
for p in "${CXX_PACKAGES[@]}" "${PY_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#CXX_PACKAGES[@]}+${#PY_PACKAGES[@]} Debian packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
