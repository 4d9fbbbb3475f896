#!/usr/bin/env bash
# The shipped model: parnet's predictions on the full Fashion-MNIST test set must equal PyTorch's
# for the same weights on at least 99.9% of the images, and the accuracies may differ by at most
# 0.05 points. PyTorch's logits come from scripts/fmnist_reference_predictions.py.
# Usage: models_fmnist_parity.sh PARNET_BINARY REPO_ROOT
set -euo pipefail
PARNET=$1
ROOT=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MODEL="$ROOT/deploy/models/parnet-fmnist/1/model.onnx"
/usr/bin/python3 "$ROOT/scripts/fmnist_reference_predictions.py" "$MODEL" "$WORK/torch.npy"
"$PARNET" eval --model "$MODEL" --dataset fashion-mnist --predictions "$WORK/parnet.npy" 2>/dev/null \
  | grep -E "accuracy|speed"
/usr/bin/python3 - "$WORK" <<'PY'
import gzip, sys
import numpy as np
w = sys.argv[1]
torch_logits, parnet_logits = np.load(f"{w}/torch.npy"), np.load(f"{w}/parnet.npy")
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read()[8:], np.uint8)
assert torch_logits.shape == parnet_logits.shape == (10000, 10), (torch_logits.shape, parnet_logits.shape)
pt, pp = torch_logits.argmax(1), parnet_logits.argmax(1)
agree = (pt == pp).mean() * 100
acc_t, acc_p = (pt == labels).mean() * 100, (pp == labels).mean() * 100
err = np.abs(torch_logits - parnet_logits).max() / np.abs(torch_logits).max()
print(f"agreement {agree:.2f}%  accuracy torch {acc_t:.2f}%  parnet {acc_p:.2f}%  "
      f"max logit error {err:.2e} of max |logit|")
ok = agree >= 99.9 and abs(acc_t - acc_p) <= 0.05
print("fmnist parity: 1 passed, 0 failed" if ok else "fmnist parity: 0 passed, 1 failed")
sys.exit(0 if ok else 1)
PY
