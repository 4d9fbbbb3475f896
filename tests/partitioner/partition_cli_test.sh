#!/usr/bin/env bash
# `parnet partition` on every shipped cluster file, with --explain and its SVG; bad cluster files
# and a profile of another model are refused with messages naming the problem.
set -uo pipefail
parnet=$1 src=$2 models=$3
source "$src/tests/cli/cli_expect.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
m=$models/m_fused.onnx

for cluster in "$src"/deploy/clusters/*.pbtxt; do
  name=$(basename "$cluster" .pbtxt)
  expect "partition $name" 0 "predicted latency [0-9.]+ ms" -- \
    "$parnet" partition -m "$m" -c "$cluster" --explain --out "$tmp/$name.pbtxt"
  expect "$name plan written" 0 "predicted_latency_ms" -- cat "$tmp/$name.pbtxt"
  expect "$name svg written" 0 "<svg .*</svg>|</svg>" -- cat "$tmp/$name.pbtxt.svg"
done
expect "explain lists the authors' layout" 0 "authors' 3-device layout" -- \
  "$parnet" partition -m "$m" -c "$src/deploy/clusters/3-gpus-nvlink.pbtxt" --explain \
    --svg "$tmp/x.svg"
expect "the slow device is idle" 0 "slow: \(idle\)" -- \
  "$parnet" partition -m "$m" -c "$src/deploy/clusters/heterogeneous.pbtxt"

printf 'devices { name: "a" kind: CPU cores: 0 speed: 1 }\n' >"$tmp/unknown.pbtxt"
expect "unknown field" 1 "no field named \"speed\".*proto/cluster.proto" -- \
  "$parnet" partition -m "$m" -c "$tmp/unknown.pbtxt"
printf 'name: "nothing"\n' >"$tmp/empty.pbtxt"
expect "no devices" 1 "no devices; add at least one" -- \
  "$parnet" partition -m "$m" -c "$tmp/empty.pbtxt"
printf 'devices { name: "a" kind: CPU cores: 0 gflops: 1 }\ndevices { name: "b" kind: CPU cores: 1 gflops: 1 }\nlinks { a: "a" b: "b" bandwidth_gbit_s: 0 }\n' >"$tmp/zero.pbtxt"
expect "zero bandwidth" 1 "positive bandwidth" -- \
  "$parnet" partition -m "$m" -c "$tmp/zero.pbtxt"
expect "missing cluster file" 1 "cannot open cluster file" -- \
  "$parnet" partition -m "$m" -c "$tmp/none.pbtxt"
printf 'model_sha256: "0000"\ndevice_kind: "cpu"\n' >"$tmp/profile.pbtxt"
expect "profile of another model" 1 "measured on another model" -- \
  "$parnet" partition -m "$m" -c "$src/deploy/clusters/this-machine-2-cores.pbtxt" \
    --profile "$tmp/profile.pbtxt"

# Measured costs: profile the cifar variant at 1 thread, then partition with the profile.
c=$models/cifar_fused.onnx
expect "profile" 0 "wrote $tmp/p.pbtxt" -- \
  "$parnet" profile -m "$c" --batch 1,2 --threads 1 --size 32 --seconds 0.05 --out "$tmp/p.pbtxt"
expect "profile has every stage" 0 "median_ms" -- cat "$tmp/p.pbtxt"
expect "partition with the profile" 0 "predicted latency [0-9.]+ ms \(profile " -- \
  "$parnet" partition -m "$c" --size 32 --batch 2 \
    -c "$src/deploy/clusters/this-machine-2-cores.pbtxt" --profile "$tmp/p.pbtxt"
expect "profile lacks the thread count" 1 "no timing of stage .* at 16 thread" -- \
  "$parnet" partition -m "$c" --size 32 -c "$src/deploy/clusters/4-hosts-10gbe.pbtxt" \
    --profile "$tmp/p.pbtxt"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
