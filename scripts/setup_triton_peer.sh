#!/usr/bin/env bash
# Unpacks NVIDIA's Triton Inference Server binary from PyPI (the tritonserver that the
# nvidia-pytriton wheel carries, with its Python backend) into .triton-peer, as the peer that
# scripts/bench_serve.py --triton measures beside `parnet serve`. Nothing of it is built into
# parnet; the folder is git-ignored. Idempotent.
# Usage: scripts/setup_triton_peer.sh      (then .triton-peer/bin/tritonserver)
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${PEER:-.triton-peer}
WHEEL_VERSION=0.7.0
PY=/usr/bin/python3

if [ -f "$PEER/.complete" ] && [ "$(cat "$PEER/.complete")" = "$WHEEL_VERSION" ]; then
  echo "setup_triton_peer: $PEER is complete"
  exit 0
fi
case "$PEER" in /*) ;; *) PEER="$PWD/$PEER" ;; esac
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
pyver=$($PY -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
# The Python backend's stub links the interpreter's shared library.
if ! dpkg-query -W -f='${Status}' "libpython$pyver" 2>/dev/null | grep -q "install ok installed"; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "libpython$pyver" >/dev/null
fi
scripts/setup_serve_venv.sh >/dev/null  # its pip downloads the wheel
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv-serve/bin/pip download -q --disable-pip-version-check --no-deps \
  "nvidia-pytriton==$WHEEL_VERSION" -d "$tmp"
$PY -m zipfile -e "$tmp"/nvidia_pytriton-*.whl "$tmp/x"
rm -rf "$PEER"
mkdir -p "$PEER"
mv "$tmp/x/pytriton/tritonserver/bin" "$tmp/x/pytriton/tritonserver/backends" "$PEER/"
mv "$tmp/x/nvidia_pytriton.libs" "$PEER/lib"
stub="$tmp/x/pytriton/tritonserver/python_backend_stubs/$pyver/triton_python_backend_stub"
[ -f "$stub" ] || { echo "setup_triton_peer: the wheel has no Python backend for Python $pyver" >&2; exit 1; }
mv "$stub" "$PEER/backends/python/"
chmod +x "$PEER/bin/tritonserver" "$PEER/backends/python/triton_python_backend_stub"
# (tritonserver --help exits with status 1, so check that every library resolves instead.)
missing=$(LD_LIBRARY_PATH="$PEER/lib" ldd "$PEER/bin/tritonserver" \
  "$PEER/backends/python/triton_python_backend_stub" | grep "not found" || true)
if [ -n "$missing" ]; then
  echo "setup_triton_peer: tritonserver cannot start, libraries missing:" >&2
  echo "$missing" >&2
  exit 1
fi
echo "$WHEEL_VERSION" > "$PEER/.complete"
echo "setup_triton_peer: $PEER ready"
