#!/usr/bin/env bash
# `parnet inspect` on bad models: each must exit non-zero with a message naming the problem, never
# crash (the ASan build runs this too: a sanitizer report fails the check below).
# Usage: inspect_cli_test.sh PARNET_BINARY REPO_ROOT
set -uo pipefail
PARNET=$1
ROOT=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=cli_expect.sh
source "$(dirname "$0")/cli_expect.sh"
/usr/bin/python3 "$ROOT/scripts/parnet_reference.py" export --variant cifar --weights random \
  --seed 0 --fused --out "$WORK/cifar.onnx" >/dev/null
/usr/bin/python3 - "$WORK" <<'PY'
import sys, onnx
from onnx import helper, TensorProto as T
work = sys.argv[1]
def save(name, nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{work}/{name}.onnx")
x = helper.make_tensor_value_info("x", T.FLOAT, [1, 4])
save("unsupported_op", [helper.make_node("Tanh", ["x"], ["y"], name="tanh0")], [x],
     [helper.make_tensor_value_info("y", T.FLOAT, [1, 4])])
save("unfoldable", [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape0")],
     [x, helper.make_tensor_value_info("shape", T.INT64, [2])],
     [helper.make_tensor_value_info("y", T.FLOAT, ["a", "b"])])
PY
head -c 3000 "$WORK/cifar.onnx" > "$WORK/truncated.onnx"
printf '\x89PNG\r\n\x1a\n\0\0\0\rIHDR' > "$WORK/image.onnx"

expect valid_model 0 "FLOPs: [0-9]+" -- "$PARNET" inspect --model "$WORK/cifar.onnx" --shape input=2,3,32,32
expect missing_file 1 "NOT_FOUND.*nope.onnx" -- "$PARNET" inspect --model "$WORK/nope.onnx"
expect truncated 1 "truncated" -- "$PARNET" inspect --model "$WORK/truncated.onnx"
expect wrong_magic 1 "not a valid ONNX model|not an ONNX model" -- "$PARNET" inspect --model "$WORK/image.onnx"
expect unsupported_op 1 "'tanh0'.*'Tanh' is not supported" -- "$PARNET" inspect --model "$WORK/unsupported_op.onnx"
expect unfoldable_shape 1 "'reshape0'.*depends on runtime data" -- "$PARNET" inspect --model "$WORK/unfoldable.onnx" --shape x=1,4
expect bad_shape_flag 1 "must look like name=" -- "$PARNET" inspect --model "$WORK/cifar.onnx" --shape 1,3,32,32
expect shape_not_allowed 1 "the model takes FP32\[\?,3,\?,\?\]" -- "$PARNET" inspect --model "$WORK/cifar.onnx" --shape input=1,1,32,32
echo "inspect cli: $passed passed, $failed failed"
[ $failed -eq 0 ]
