#!/usr/bin/env bash
# `parnet run` on good and bad input: bad input exits non-zero with a message naming the problem,
# never a crash (the ASan build runs this too).
# Usage: run_cli_test.sh PARNET_BINARY REPO_ROOT
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
import sys
import numpy as np
from PIL import Image
w = sys.argv[1]
rng = np.random.default_rng(0)
def save(name, shape, dtype=np.float32):
    np.save(f"{w}/{name}.npy", rng.standard_normal(shape).astype(dtype))
save("good", (2, 3, 32, 32))
save("rank3", (3, 32, 32))
save("float64", (1, 3, 32, 32), np.float64)
save("batch0", (0, 3, 32, 32))
save("h48", (1, 3, 48, 32))
save("channels1", (1, 1, 32, 32))
raw = open(f"{w}/good.npy", "rb").read()
open(f"{w}/truncated.npy", "wb").write(raw[: len(raw) - 100])
np.save(f"{w}/complex.npy", np.zeros((1, 3, 32, 32), np.complex64))
img = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
Image.fromarray(img).save(f"{w}/cat.png")
open(f"{w}/notimage.jpg", "w").write("this is text, not a JPEG\n")
open(f"{w}/labels.txt", "w").write("".join(f"class-{i}\n" for i in range(10)))
PY

M="$WORK/cifar.onnx"
expect npy_batch 0 "item 1:" -- "$PARNET" run --model "$M" --input "$WORK/good.npy" --output "$WORK/y.npy"
expect labels 0 "class-[0-9]" -- "$PARNET" run --model "$M" --input "$WORK/good.npy" --labels "$WORK/labels.txt"
expect image 0 "item 0:" -- "$PARNET" run --model "$M" --input "$WORK/cat.png" --input "$WORK/cat.png"
expect reference_backend 0 "item 0:" -- "$PARNET" run --model "$M" --input "$WORK/good.npy" --backend reference
expect wrong_rank 1 "expected FP32\[\?,3,\?,\?\].*got FP32\[3,32,32\].*rank must be 4" -- "$PARNET" run --model "$M" --input "$WORK/rank3.npy"
expect wrong_dtype 1 "got FP64\[1,3,32,32\].*convert the data to FP32" -- "$PARNET" run --model "$M" --input "$WORK/float64.npy"
expect batch_zero 1 "batch size must be >= 1" -- "$PARNET" run --model "$M" --input "$WORK/batch0.npy"
expect h_not_allowed 1 "got FP32\[1,3,48,32\].*H divisible by 32" -- "$PARNET" run --model "$M" --input "$WORK/h48.npy"
expect wrong_channels 1 "dimension 1 must be 3" -- "$PARNET" run --model "$M" --input "$WORK/channels1.npy"
expect truncated_npy 1 "truncated" -- "$PARNET" run --model "$M" --input "$WORK/truncated.npy"
expect complex_npy 1 "c8" -- "$PARNET" run --model "$M" --input "$WORK/complex.npy"
expect unreadable_image 1 "notimage.jpg" -- "$PARNET" run --model "$M" --input "$WORK/notimage.jpg"
expect missing_input 1 "NOT_FOUND.*nothere.npy" -- "$PARNET" run --model "$M" --input "$WORK/nothere.npy"
expect missing_model 1 "NOT_FOUND.*nomodel.onnx" -- "$PARNET" run --model "$WORK/nomodel.onnx" --input "$WORK/good.npy"
expect missing_labels 1 "NOT_FOUND.*nolabels.txt" -- "$PARNET" run --model "$M" --input "$WORK/good.npy" --labels "$WORK/nolabels.txt"
expect unknown_backend 1 "backend 'tpu' is not available.*cpu" -- "$PARNET" run --model "$M" --input "$WORK/good.npy" --backend tpu
expect bench 0 "^ +4 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9]+" -- "$PARNET" bench --model "$M" --batch 1,4 --size 32 --seconds 0.2 --min-iters 3 --json "$WORK/b.json" --csv "$WORK/b.csv"
expect bench_json 0 "ok 2 cases" -- /usr/bin/python3 -c "import json; j = json.load(open('$WORK/b.json')); assert [c['batch'] for c in j['cases']] == [1, 4] and all(len(c['latencies_ms']) >= 3 and c['gflops'] > 0 for c in j['cases']) and 'ISA' in j['machine']['backend']; print('ok', len(j['cases']), 'cases')"
expect bench_idle 0 "idle: +20000 us" -- "$PARNET" bench --model "$M" --batch 1 --size 32 --seconds 0 --min-iters 3 --idle-us 20000 --json "$WORK/idle.json"
expect bench_idle_json 0 "ok idle" -- /usr/bin/python3 -c "import json; j = json.load(open('$WORK/idle.json')); assert j['idle_us'] == 20000 and len(j['cases'][0]['latencies_ms']) == 3; print('ok idle')"
expect bench_idle_sleeps 0 "ok idle sleeps" -- /usr/bin/python3 -c "
import subprocess, sys, time
def wall(idle):
    t = time.monotonic()
    subprocess.run(['$PARNET', 'bench', '--model', '$M', '--batch', '1', '--size', '32', '--seconds', '0', '--min-iters', '3', '--idle-us', str(idle)], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t
# 3 runs idling 1 s each: 3 s longer, with room for a loaded machine's slower start (at 0.3 s
# each, a busy ctest -j2 once made the difference 0.73 s).
gap = wall(1000000) - wall(0)
assert gap > 2.0, f'3 runs idling 1 s each took only {gap:.2f} s longer'
print('ok idle sleeps')"
expect bench_idle_plan 1 "idle-us applies to one engine" -- "$PARNET" bench --model "$M" --plan "$WORK/none.json" --idle-us 5
expect bench_bad_batch 1 "batch values must be >= 1" -- "$PARNET" bench --model "$M" --batch 0 --size 32
expect eval_dataset 1 "unknown dataset 'imagenet'" -- "$PARNET" eval --model "$M" --dataset imagenet
expect eval_missing_data 1 "NOT_FOUND.*t10k-images" -- "$PARNET" eval --model "$M" --data-dir "$WORK/nowhere"
echo "run cli: $passed passed, $failed failed"
[ $failed -eq 0 ]
