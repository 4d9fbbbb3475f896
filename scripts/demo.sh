#!/usr/bin/env bash
# The main job on the shipped model, from a fresh Debian 12 machine: installs what is needed,
# builds parnet, shows the model's structure, evaluates it on the Fashion-MNIST test set (accuracy,
# confusion matrix, images/s) and prints a few test images with their predicted labels; then
# measures the model's stages on this machine, shows the plan the partitioner chooses for its two
# cores (against one device) and evaluates the model again with that plan.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=deploy/models/parnet-fmnist/1/model.onnx

bash scripts/setup.sh
cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j"${JOBS:-2}" parnet >/dev/null
PARNET=build/runtime/cli/parnet

echo "=== the shipped model: $MODEL"
"$PARNET" inspect --model "$MODEL" --summary --blocks
echo
echo "=== Fashion-MNIST test set (10,000 images) on this CPU with oneDNN"
"$PARNET" eval --model "$MODEL" --dataset fashion-mnist --show 8
echo
echo "=== the plan for this machine: the stages measured on its cores, then placed"
"$PARNET" profile --model "$MODEL" --batch 256 --threads 1,2 --seconds 0.3 \
  --out build/demo-profile.pbtxt >/dev/null
"$PARNET" partition --model "$MODEL" --cluster deploy/clusters/this-machine-2-cores.pbtxt \
  --profile build/demo-profile.pbtxt --batch 256 --explain --out build/demo-plan.pbtxt
echo
echo "=== the shipped model run with that plan (parnet eval --plan)"
"$PARNET" eval --model "$MODEL" --dataset fashion-mnist --plan build/demo-plan.pbtxt
