#!/usr/bin/env bash
# Make .venv-bench (repository root) for scripts/bench_peers.py: Debian's python with its torch,
# onnx and numpy visible (--system-site-packages), plus the PyPI peers pinned in
# scripts/requirements-bench.txt (onnxruntime, openvino). Idempotent: when the venv already holds
# the pinned set it only checks the imports (a few seconds).
#   scripts/setup_bench_venv.sh && .venv-bench/bin/python scripts/bench_peers.py --quick
# VENV=DIR overrides the location.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv-bench}"
req="$root/scripts/requirements-bench.txt"
py=/usr/bin/python3

if ! $py -c 'import ensurepip, venv' 2>/dev/null; then
    echo "installing python3-venv (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi
if ! $py -c 'import torch, onnx, numpy' 2>/dev/null; then
    echo "Debian's torch/onnx/numpy are missing: apt-get install python3-torch python3-onnx" \
         "python3-numpy libopenblas0-pthread (see shared/BUILD-NOTES.md)" >&2
    exit 1
fi

stamp="$venv/.requirements-bench.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
install() {
    [[ -x "$venv/bin/python" ]] || $py -m venv --system-site-packages "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
}
check() {
    "$venv/bin/python" - <<'PY'
import numpy, torch, onnxruntime, openvino
print(f"numpy {numpy.__version__} ({numpy.__file__.rsplit('/numpy/', 1)[0]}), torch {torch.__version__}, "
      f"onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__.split('-')[0]}")
assert int(numpy.__version__.split('.')[0]) < 2, 'numpy 2 in the venv breaks Debian torch 1.13'
PY
}
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    check && { echo "$venv is up to date"; exit 0; }
    echo "$venv is broken: reinstalling"
fi
install
check
