#!/usr/bin/env bash
# Exports the models the partitioner tests read: ParNet-M fused and unfused (SiLU, 224x224) and
# the cifar variant fused, all with random weights.
set -euo pipefail
src=$1 out=$2
mkdir -p "$out"
export_model() {
  /usr/bin/python3 "$src/scripts/parnet_reference.py" export --weights random --seed 0 "$@"
}
export_model --variant M --act silu --fused --out "$out/m_fused.onnx"
export_model --variant M --act silu --unfused --keep-bn --out "$out/m_unfused.onnx"
export_model --variant cifar --act relu --fused --out "$out/cifar_fused.onnx"
