#!/usr/bin/env bash
# Installs parnet from BUILD_DIR into a temporary prefix, builds the example in
# tests/install/example against it with find_package(parnet), and checks that it classifies a
# batch exactly as `parnet run` does.
# Usage: install_test.sh BUILD_DIR REPO_ROOT
set -euo pipefail
BUILD=$1
ROOT=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
cmake -G Ninja -S "$ROOT/tests/install/example" -B "$WORK/example" \
  -DCMAKE_PREFIX_PATH="$WORK/prefix" >/dev/null
ninja -C "$WORK/example" >/dev/null
/usr/bin/python3 "$ROOT/scripts/parnet_reference.py" export --variant cifar --weights random \
  --seed 3 --fused --out "$WORK/m.onnx" >/dev/null
/usr/bin/python3 -c "import numpy as np; np.save('$WORK/x.npy', np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32))"
"$WORK/example/classify" "$WORK/m.onnx" "$WORK/x.npy" | tee "$WORK/example.txt"
"$WORK/prefix/bin/parnet" run --model "$WORK/m.onnx" --input "$WORK/x.npy" --top 1 > "$WORK/run.txt"
want=$(awk '/^item/{getline; print $1}' "$WORK/run.txt" | tr '\n' ' ')
got=$(awk '/^item/{print $4}' "$WORK/example.txt" | tr '\n' ' ')
echo "example: $got; parnet run: $want"
[ -n "$got" ] && [ "$got" = "$want" ]
grep -q "logits FP32\[3,10\]" "$WORK/example.txt"
