#!/usr/bin/python3
"""Train the shipped ParNet on Fashion-MNIST and write a Triton-style model folder.

The network is the full ParNet of scripts/parnet_reference.py (stem, three
streams of SSE blocks, downsample, both fusion blocks with 2 groups and the
channel shuffle, final downsample, classifier) with narrow widths, one input
channel and 10 classes.  Input convention, for every consumer of the model:
the 28x28 uint8 image zero-padded by 2 on each side to 32x32, divided by 255,
float32 NCHW [batch, 1, 32, 32].  No mean/std normalization.

Data come from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
Run with /usr/bin/python3; see docs/shipped-model.md.
"""

import argparse
import gzip
import json
import os
import platform
import shlex
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import parnet_reference as pr  # noqa: E402

DATA_DIR = '/usr/share/datasets/fashion-mnist'
REPO = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(REPO, 'deploy', 'models', 'parnet-fmnist')
MODEL_NAME = 'parnet-fmnist'
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
           'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
SIZE, PAD = 32, 2              # 28 + 2 * 2
EVAL_BATCH = 500               # the oracle script uses the same batch size
MAX_BATCH = 256                # Triton max_batch_size
PREFERRED_BATCHES = (16, 64, 256)


# -------------------------------------------------------------------- data

def read_idx(path, header):
    """Big-endian IDX file (gzip): images have a 16-byte header, labels 8."""
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], 'big')
    ndim = magic & 0xff
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    if magic >> 8 != 0x08 or 4 + 4 * ndim != header:       # 0x08: unsigned byte
        raise ValueError(f'{path}: not a uint8 IDX file with a {header}-byte header')
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(dims)):
        raise ValueError(f'{path}: {data.size} values, header says {dims}')
    return data.reshape(dims)


def load_split(split, data_dir=DATA_DIR):
    """split 'train' or 't10k' -> (uint8 images [N,28,28], int64 labels [N])."""
    images = read_idx(os.path.join(data_dir, f'{split}-images-idx3-ubyte.gz'), 16)
    labels = read_idx(os.path.join(data_dir, f'{split}-labels-idx1-ubyte.gz'), 8)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(f'{split}: unexpected shapes {images.shape} {labels.shape}')
    return images, labels.astype(np.int64)


def to_input(images):
    """uint8 [N,28,28] -> float32 tensor [N,1,32,32]: zero-pad 2, divide by 255."""
    x = np.zeros((images.shape[0], 1, SIZE, SIZE), np.float32)
    x[:, 0, PAD:PAD + 28, PAD:PAD + 28] = images.astype(np.float32) / 255.0
    return torch.from_numpy(x)


def augment(x, rng, crop_pad, flip):
    """Random crop (zero-pad by crop_pad, crop 32x32, i.e. shift by up to
    +-crop_pad pixels) and horizontal flip, drawn from the numpy Generator."""
    n = x.shape[0]
    out = x
    if crop_pad:
        big = F.pad(x, (crop_pad,) * 4)
        dy = rng.integers(0, 2 * crop_pad + 1, n)
        dx = rng.integers(0, 2 * crop_pad + 1, n)
        out = torch.empty_like(x)
        for i in range(n):
            out[i] = big[i, :, dy[i]:dy[i] + SIZE, dx[i]:dx[i] + SIZE]
    if flip:
        mask = torch.from_numpy(rng.random(n) < 0.5)
        if mask.any():
            out = out.clone() if out is x else out
            out[mask] = out[mask].flip(3)
    return out


# ------------------------------------------------------------------ model

def build(widths, act, stem, seed):
    torch.manual_seed(seed)
    cfg = pr.Config(widths=tuple(widths), classes=len(CLASSES), act=act,
                    stem=stem, in_channels=1)
    return pr.ParNet(cfg)


def param_groups(model, weight_decay):
    """No weight decay on BN parameters and biases."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{'params': decay, 'weight_decay': weight_decay},
            {'params': no_decay, 'weight_decay': 0.0}]


@torch.no_grad()
def predict(model, x, batch=EVAL_BATCH):
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, x.shape[0], batch)])


def accuracy(logits, labels):
    return float((logits.argmax(1) == labels).double().mean())


# ---------------------------------------------------------------- outputs

def config_pbtxt(classes):
    """Subset of Triton's ModelConfig (model_config.proto) in protobuf text
    format.  dims exclude the batch dimension because max_batch_size > 0."""
    pref = ', '.join(str(b) for b in PREFERRED_BATCHES)
    return f'''name: "{MODEL_NAME}"
platform: "onnxruntime_onnx"
max_batch_size: {MAX_BATCH}
input [
  {{
    name: "input"
    data_type: TYPE_FP32
    dims: [ 1, {SIZE}, {SIZE} ]
  }}
]
output [
  {{
    name: "logits"
    data_type: TYPE_FP32
    dims: [ {classes} ]
    label_filename: "labels.txt"
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {pref} ]
  max_queue_delay_microseconds: 2000
}}
instance_group [
  {{
    count: 1
    kind: KIND_CPU
  }}
]
'''


def export(fused, out_dir):
    import onnx
    path = os.path.join(out_dir, '1', 'model.onnx')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    proto = pr.export_onnx(fused, path, SIZE, opset=13, dynamic_hw=False)
    # Dynamic batch only: [batch, 1, 32, 32] -> [batch, 10].
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    odims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert proto.graph.input[0].name == 'input' and dims == ['batch', 1, SIZE, SIZE], dims
    assert proto.graph.output[0].name == 'logits' and odims == ['batch', len(CLASSES)], odims
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    return path, proto


# -------------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--epochs', type=int, default=8)
    ap.add_argument('--widths', type=pr.parse_widths, default=(32, 64, 128, 256),
                    help='C1,C2,C3,Cf')
    ap.add_argument('--stem', type=int, default=None,
                    help='stem width C0 (default min(64, C1))')
    ap.add_argument('--act', choices=pr.ACTIVATIONS, default='relu')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out-dir', default=DEFAULT_OUT)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--lr', type=float, default=0.1, help='peak SGD learning rate')
    ap.add_argument('--momentum', type=float, default=0.9)
    ap.add_argument('--weight-decay', type=float, default=5e-4)
    ap.add_argument('--warmup', type=float, default=0.15,
                    help='OneCycle: fraction of steps spent warming up')
    ap.add_argument('--label-smoothing', type=float, default=0.1)
    ap.add_argument('--crop-pad', type=int, default=2, help='random-crop padding (0: off)')
    ap.add_argument('--no-flip', dest='flip', action='store_false')
    ap.add_argument('--train-limit', type=int, default=0,
                    help='use only the first N training images (quick trials)')
    ap.add_argument('--test-limit', type=int, default=0,
                    help='evaluate only the first N test images (quick trials)')
    ap.add_argument('--no-export', dest='export', action='store_false',
                    help='train and evaluate only; write nothing (quick trials)')
    return ap.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(args.seed)

    tr_img, tr_lab = load_split('train')
    te_img, te_lab = load_split('t10k')
    if args.train_limit:
        tr_img, tr_lab = tr_img[:args.train_limit], tr_lab[:args.train_limit]
    if args.test_limit:
        te_img, te_lab = te_img[:args.test_limit], te_lab[:args.test_limit]
    x_train, y_train = to_input(tr_img), torch.from_numpy(tr_lab)
    x_test, y_test = to_input(te_img), torch.from_numpy(te_lab)

    model = build(args.widths, args.act, args.stem, args.seed)
    n = x_train.shape[0]
    steps_per_epoch = n // args.batch_size          # drop the last partial batch
    total_steps = steps_per_epoch * args.epochs
    opt = torch.optim.SGD(param_groups(model, args.weight_decay), lr=args.lr,
                          momentum=args.momentum, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=total_steps, pct_start=args.warmup,
        anneal_strategy='cos', div_factor=25.0, final_div_factor=1e3,
        cycle_momentum=False)
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    print(f'{pr.describe(model)}; params {pr.count_params(model)}; '
          f'{n} train / {x_test.shape[0]} test images; {args.epochs} epochs x '
          f'{steps_per_epoch} steps', flush=True)

    history = []
    for epoch in range(args.epochs):
        t0 = time.time()
        model.train()
        perm = torch.from_numpy(rng.permutation(n))
        loss_sum, seen = 0.0, 0
        for step in range(steps_per_epoch):
            idx = perm[step * args.batch_size:(step + 1) * args.batch_size]
            xb = augment(x_train[idx], rng, args.crop_pad, args.flip)
            yb = y_train[idx]
            loss = criterion(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(idx)
            seen += len(idx)
            if step % 100 == 0:
                print(f'  epoch {epoch + 1} step {step}/{steps_per_epoch} loss {float(loss):.4f} '
                      f'lr {sched.get_last_lr()[0]:.4g} {time.time() - t0:.0f}s', flush=True)
        train_time = time.time() - t0
        acc = accuracy(predict(model, x_test), y_test)
        history.append({'epoch': epoch + 1, 'train_loss': loss_sum / seen,
                        'test_accuracy': acc, 'epoch_train_seconds': round(train_time, 1),
                        'epoch_total_seconds': round(time.time() - t0, 1)})
        print(f'epoch {epoch + 1}/{args.epochs}: train loss {loss_sum / seen:.4f} '
              f'test acc {acc:.4f} ({train_time:.0f}s train, {time.time() - t0:.0f}s total)',
              flush=True)
    train_wall = time.time() - t_start

    model.eval()
    logits = predict(model, x_test)
    acc_unfused = accuracy(logits, y_test)
    fused = pr.fuse(model)
    logits_fused = predict(fused, x_test)
    rel = pr.max_rel_diff(logits, logits_fused)
    acc_fused = accuracy(logits_fused, y_test)
    print(f'unfused test acc {acc_unfused:.4f}; fused test acc {acc_fused:.4f}; '
          f'fused vs unfused max rel diff {rel:.3g}', flush=True)
    if rel >= 1e-4:
        raise SystemExit(f'fused and unfused logits disagree (max rel diff {rel:.3g})')
    if not args.export:
        return 0

    out = args.out_dir
    os.makedirs(out, exist_ok=True)
    onnx_path, proto = export(fused, out)
    with open(os.path.join(out, 'config.pbtxt'), 'w') as f:
        f.write(config_pbtxt(len(CLASSES)))
    with open(os.path.join(out, 'labels.txt'), 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')

    cfg = model.cfg
    record = {
        'model': MODEL_NAME,
        'command': ' '.join(shlex.quote(a) for a in
                            ['/usr/bin/python3', 'scripts/train_fmnist.py'] + list(argv)),
        'architecture': {
            'widths': list(cfg.widths), 'stem_c0': cfg.c0, 'stream_depths': list(cfg.depths),
            'in_channels': cfg.in_channels, 'classes': cfg.classes, 'activation': cfg.act,
            'params_unfused': pr.count_params(model), 'params_fused': pr.count_params(fused),
            'flops_fused_32x32': 2 * pr.count_macs(fused, SIZE),
            'flops_unfused_32x32': 2 * pr.count_macs(model, SIZE),
        },
        'input': {'shape': ['batch', 1, SIZE, SIZE], 'dtype': 'float32',
                  'preprocessing': 'uint8 28x28 zero-padded by 2 on each side to 32x32, '
                                   'divided by 255; no mean/std normalization'},
        'data': {'source': DATA_DIR, 'train_images': int(n),
                 'test_images': int(x_test.shape[0])},
        'training': {
            'epochs': args.epochs, 'seed': args.seed, 'batch_size': args.batch_size,
            'steps_per_epoch': steps_per_epoch, 'drop_last': True,
            'optimizer': {'type': 'SGD', 'nesterov': True, 'momentum': args.momentum,
                          'weight_decay': args.weight_decay,
                          'weight_decay_on_bn_and_bias': False},
            'lr_schedule': {'type': 'OneCycleLR', 'max_lr': args.lr,
                            'pct_start': args.warmup, 'anneal_strategy': 'cos',
                            'div_factor': 25.0, 'final_div_factor': 1e3,
                            'cycle_momentum': False},
            'loss': {'type': 'cross_entropy', 'label_smoothing': args.label_smoothing},
            'augmentation': {'random_crop_padding': args.crop_pad,
                             'horizontal_flip': args.flip},
            'init': 'PyTorch defaults after torch.manual_seed(seed)',
            'data_order': 'numpy default_rng(seed) permutation per epoch, single process',
            'threads': args.threads,
        },
        'environment': {'torch': torch.__version__, 'numpy': np.__version__,
                        'python': platform.python_version(), 'machine': platform.machine()},
        'history': history,
        'test_accuracy_unfused': acc_unfused,
        'test_accuracy_fused': acc_fused,
        'fused_vs_unfused_max_rel_diff': rel,
        'eval_batch_size': EVAL_BATCH,
        'training_wall_seconds': round(train_wall, 1),
        'onnx': {'path': '1/model.onnx', 'opset': 13, 'bytes': os.path.getsize(onnx_path),
                 'ops': pr.op_histogram(proto)},
    }
    with open(os.path.join(out, 'training.json'), 'w') as f:
        json.dump(record, f, indent=2)
        f.write('\n')
    print(f'wrote {out}: model.onnx {os.path.getsize(onnx_path)} bytes; '
          f'total {time.time() - t_start:.0f}s', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
