#!/usr/bin/python3
"""PyTorch oracle for the shipped Fashion-MNIST ParNet.

    /usr/bin/python3 scripts/fmnist_reference_predictions.py MODEL_ONNX OUT_NPY [--limit N]

Rebuilds the fused (inference-form) ParNet of scripts/parnet_reference.py with
the widths, stem width, stream depths, input channels and class count read
from the ONNX initializer shapes, loads every parameter and BN statistic from
the initializers, runs the Fashion-MNIST test set (28x28 zero-padded to 32x32,
divided by 255) and writes float32 logits [N, classes] to OUT_NPY.  It prints
the top-1 accuracy, which equals test_accuracy_fused in the model's
training.json.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import parnet_reference as pr  # noqa: E402
from train_fmnist import EVAL_BATCH, load_split, predict, to_input  # noqa: E402


def initializers(proto):
    from onnx import numpy_helper
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def config_from_onnx(proto, inits):
    """Config from fused weight shapes.  torch.onnx.export keeps the module's
    parameter names; should a name be missing, the 3x3 dense convs are taken
    in graph order (stem 0, stem 1, inits.1, inits.2, ..., combine.3 last)
    and the class count from the Gemm weight."""
    dense = [inits[n.input[1]] for n in proto.graph.node
             if n.op_type == 'Conv' and n.input[1] in inits
             and inits[n.input[1]].ndim == 4 and inits[n.input[1]].shape[2:] == (3, 3)]
    gemm = [inits[n.input[1]] for n in proto.graph.node
            if n.op_type == 'Gemm' and n.input[1] in inits]

    def w(prefix, pos):
        return inits.get(prefix + '.block.rbr_dense.weight', dense[pos])

    def depth(s):
        idx = {int(k.split('.')[2]) for k in inits if k.startswith(f'streams.{s}.')}
        return max(idx) + 1 if idx else 0

    depths = tuple(depth(s) for s in range(3))
    if sum(depths) + 8 != len(dense):
        depths = pr.STREAM_DEPTHS
    if sum(depths) + 8 != len(dense):
        raise SystemExit(f'{len(dense)} 3x3 convs: not a fused ParNet')
    ops = {n.op_type for n in proto.graph.node}
    stem = w('inits.0.0', 0)
    fc = inits.get('head.fc.weight', gemm[-1] if gemm else None)
    return pr.Config(widths=(w('inits.0.1', 1).shape[0], w('inits.1', 2).shape[0],
                             w('inits.2', 3).shape[0], w('combine.3', -1).shape[0]),
                     classes=fc.shape[0], act='relu' if 'Relu' in ops else 'silu',
                     stem=stem.shape[0], depths=depths, in_channels=stem.shape[1])


def graph_order_params(proto, inits):
    """Initializer names of Conv/BN/Gemm nodes in graph order, per node kind:
    the fallback when the exporter renamed a parameter."""
    order = {'Conv': [], 'BatchNormalization': [], 'Gemm': []}
    for node in proto.graph.node:
        if node.op_type in order:
            order[node.op_type].append([i if i in inits else None for i in node.input[1:]])
    return order


def module_order(model, in_ch, size):
    """Conv2d/BatchNorm2d/Linear modules in execution order (the export order)."""
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.append(n))
             for n, m in model.named_modules()
             if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, in_ch, size, size))
    for h in hooks:
        h.remove()
    return seen


def load_fused(path):
    import onnx
    proto = onnx.load(path)
    inits = initializers(proto)
    cfg = config_from_onnx(proto, inits)
    model = pr.fuse(pr.ParNet(cfg)).eval()
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[2:]]
    size = dims[0] if dims and dims[0] else 32

    sd = model.state_dict()
    wanted = [k for k in sd if not k.endswith('num_batches_tracked')]
    values, renamed = {}, 0
    for k in wanted:
        if k in inits:
            values[k] = inits[k]
    missing = [k for k in wanted if k not in values]
    if missing:
        # Map by position: the n-th Conv/BN/Gemm node of the graph belongs to
        # the n-th Conv2d/BatchNorm2d/Linear module to run.
        kinds = {nn.Conv2d: ('Conv', ('weight', 'bias')),
                 nn.BatchNorm2d: ('BatchNormalization',
                                  ('weight', 'bias', 'running_mean', 'running_var')),
                 nn.Linear: ('Gemm', ('weight', 'bias'))}
        order = graph_order_params(proto, inits)
        mods = dict(model.named_modules())
        count = {op: 0 for op in order}
        for name in module_order(model, cfg.in_channels, size):
            op, fields = next(v for t, v in kinds.items() if isinstance(mods[name], t))
            node_inputs = order[op][count[op]]
            count[op] += 1
            for field, src in zip(fields, node_inputs):
                key = f'{name}.{field}'
                if key in missing and src is not None:
                    values[key] = inits[src]
                    renamed += 1
    for k in wanted:
        if k not in values:
            raise SystemExit(f'{path}: no initializer for {k}')
        if tuple(values[k].shape) != tuple(sd[k].shape):
            raise SystemExit(f'{path}: {k} has shape {values[k].shape}, '
                             f'expected {tuple(sd[k].shape)}')
        sd[k] = torch.from_numpy(np.array(values[k], dtype=np.float32))
    model.load_state_dict(sd, strict=True)
    assert len(values) == len(wanted)
    return model.eval(), cfg, size, renamed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('model_onnx')
    ap.add_argument('out_npy')
    ap.add_argument('--limit', type=int, default=0, help='first N test images only')
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(args.threads)

    model, cfg, size, renamed = load_fused(args.model_onnx)
    if size != 32 or cfg.in_channels != 1:
        raise SystemExit(f'expected a [batch,1,32,32] model, got {cfg.in_channels}x{size}x{size}')
    images, labels = load_split('t10k')
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    logits = predict(model, to_input(images), EVAL_BATCH).numpy().astype(np.float32)
    os.makedirs(os.path.dirname(os.path.abspath(args.out_npy)), exist_ok=True)
    np.save(args.out_npy, logits)
    correct = int((logits.argmax(1) == labels).sum())
    print(f'{pr.describe(model)}; {len(sd_keys(model))} tensors loaded from ONNX '
          f'({renamed} by position)')
    print(f'wrote {args.out_npy}: float32 {list(logits.shape)}')
    print(f'top-1 accuracy {correct / len(labels):.4f} ({correct}/{len(labels)}, {correct / len(labels)!r}) '
          f'in {time.time() - t0:.1f}s')
    return 0


def sd_keys(model):
    return [k for k in model.state_dict() if not k.endswith('num_batches_tracked')]


if __name__ == '__main__':
    sys.exit(main())
