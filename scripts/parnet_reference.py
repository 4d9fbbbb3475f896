#!/usr/bin/python3
"""PyTorch reference for ParNet ("Non-deep Networks", Goyal et al.).

The C++ runtime is checked against this file: it builds the model with the
official module and state_dict names, re-parameterizes it into the inference
form, reads official timm checkpoints, exports ONNX, writes ONNX-style test
cases and counts parameters and FLOPs.  See docs/reference.md.

Run it with Debian's interpreter (/usr/bin/python3), which sees torch and onnx.
"""

import argparse
import os
import sys
import numpy as np
import torch
import torch.nn as nn

from parnet_model import (  # noqa: F401  (re-exported for scripts and tests)
    VARIANTS,
    STREAM_DEPTHS,
    ACTIVATIONS,
    OPSETS,
    OFFICIAL_UNFUSED_ENTRIES,
    Config,
    expected_entries,
    channel_shuffle,
    ConvBN,
    ConvSigmoid,
    Gate,
    RepBranches,
    ParBlock,
    PairBN,
    Interleave,
    Head,
    fusion_stage,
    ParNet,
    variant_config,
    randomize_,
    build_model,
    fold_bn,
    fuse_block_,
    fuse,
    is_fused,
)

# ------------------------------------------------------------- checkpoints

def select_state_dict(ckpt, use_ema=True):
    """timm checkpoint (state_dict / state_dict_ema) or a bare state_dict."""
    sd = ckpt
    if isinstance(ckpt, dict) and ('state_dict' in ckpt or 'state_dict_ema' in ckpt):
        ema = 'state_dict_ema' in ckpt and (use_ema or 'state_dict' not in ckpt)
        sd = ckpt['state_dict_ema' if ema else 'state_dict']
    return {(k[len('module.'):] if k.startswith('module.') else k): v
            for k, v in sd.items()}


def config_from_state_dict(sd, act='relu'):
    """Widths, stem width, classes and stream depths read from the weights."""
    if 'inits.0.0.block.rbr_dense.conv.weight' not in sd:
        raise ValueError('not an unfused ParNet state_dict '
                         '(no inits.0.0.block.rbr_dense.conv.weight)')

    def width(prefix):
        return sd[prefix + '.block.rbr_dense.conv.weight'].shape[0]

    def depth(s):
        idx = {int(k.split('.')[2]) for k in sd if k.startswith(f'streams.{s}.')}
        return max(idx) + 1 if idx else 0

    widths = (width('inits.0.1'), width('inits.1'), width('inits.2'), width('combine.3'))
    return Config(widths=widths, classes=sd['head.fc.weight'].shape[0], act=act,
                  stem=width('inits.0.0'), depths=tuple(depth(s) for s in range(3)),
                  in_channels=sd['inits.0.0.block.rbr_dense.conv.weight'].shape[1])


def load_checkpoint(path, act='relu', use_ema=True):
    ckpt = torch.load(path, map_location='cpu')
    sd = select_state_dict(ckpt, use_ema)
    model = ParNet(config_from_state_dict(sd, act))
    model.load_state_dict(sd, strict=True)
    return model.eval()


def write_checkpoint(cfg, seed, path, epoch=299):
    """Official layout: DDP 'module.' prefix, EMA next to the raw weights.

    state_dict_ema holds the weights of build_model(cfg, seed) (what
    converters pick by default); state_dict holds another draw (seed + 1) so
    that choosing the wrong one is visible.
    """
    def prefixed(model):
        return {'module.' + k: v for k, v in model.state_dict().items()}

    ckpt = {'epoch': epoch, 'arch': 'simplenet_repvgg',
            'state_dict': prefixed(build_model(cfg, seed + 1)),
            'state_dict_ema': prefixed(build_model(cfg, seed))}
    torch.save(ckpt, path)
    return ckpt


# ---------------------------------------------------------------- analysis

def count_macs(model, size, by_section=False):
    """Multiply-adds of Conv2d and Linear only, batch 1 (PARNET.md convention)."""
    totals = {}

    def section(name):
        top = name.split('.')[0]
        if top == 'head':
            return 'head'
        if top == 'streams':
            return '.'.join(name.split('.')[:2])
        return name.split('.block')[0]

    def hook(name):
        def fn(mod, inp, out):
            if isinstance(mod, nn.Conv2d):
                k = mod.weight[0].numel()
                macs = out[0].numel() * k
            else:
                macs = mod.in_features * mod.out_features
            totals[section(name)] = totals.get(section(name), 0) + macs
        return fn

    model.eval()
    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, in_channels_of(model), size, size))
    for h in handles:
        h.remove()
    return totals if by_section else sum(totals.values())


def in_channels_of(model):
    cfg = getattr(model, 'cfg', None)
    return cfg.in_channels if cfg is not None else 3


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def max_rel_diff(a, b):
    return float((a - b).abs().max() / a.abs().max())


# -------------------------------------------------------------------- ONNX

def export_onnx(model, path, size, opset=13, keep_bn=False, dynamic_hw=True):
    """Dynamic batch/H/W export (dynamic_hw=False: batch only, H=W=size),
    checked by onnx.checker.

    In eval mode torch's exporter folds every Conv->BN pair itself, so even
    an unfused model arrives with its branch BNs folded; keep_bn exports in
    PRESERVE mode instead, which leaves each BatchNormalization node in place.
    """
    if opset not in OPSETS:
        raise ValueError(f'opset {opset} not in 11..17')
    import onnx
    model.eval()
    dummy = torch.zeros(1, in_channels_of(model), size, size)
    dyn = {'input': {0: 'batch', 2: 'height', 3: 'width'} if dynamic_hw else {0: 'batch'},
           'logits': {0: 'batch'}}
    with torch.no_grad():
        torch.onnx.export(model, dummy, path, opset_version=opset,
                          input_names=['input'], output_names=['logits'],
                          dynamic_axes=dyn, do_constant_folding=not keep_bn,
                          training=(torch.onnx.TrainingMode.PRESERVE if keep_bn
                                    else torch.onnx.TrainingMode.EVAL))
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def op_histogram(proto):
    counts = {}
    for node in proto.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def make_testcase(model, out_dir, batches, size, seed, opset=13, keep_bn=False):
    """ONNX backend-test layout: model.onnx + test_data_set_k/{input,output}_0.pb."""
    from onnx import numpy_helper
    os.makedirs(out_dir, exist_ok=True)
    proto = export_onnx(model, os.path.join(out_dir, 'model.onnx'), size, opset, keep_bn)
    in_name, out_name = proto.graph.input[0].name, proto.graph.output[0].name
    g = torch.Generator().manual_seed(seed)
    peaks = []
    for k, b in enumerate(batches):
        x = torch.randn(b, in_channels_of(model), size, size, generator=g)
        with torch.no_grad():
            y = model(x)
        case = os.path.join(out_dir, f'test_data_set_{k}')
        os.makedirs(case, exist_ok=True)
        for fname, arr, name in (('input_0.pb', x, in_name), ('output_0.pb', y, out_name)):
            tensor = numpy_helper.from_array(arr.numpy().astype(np.float32), name=name)
            with open(os.path.join(case, fname), 'wb') as f:
                f.write(tensor.SerializeToString())
        peaks.append((b, float(y.abs().max())))
    return peaks


# --------------------------------------------------------------------- CLI

def parse_widths(text):
    w = tuple(int(v) for v in text.split(','))
    if len(w) != 4:
        raise argparse.ArgumentTypeError('--widths needs C1,C2,C3,Cf')
    return w


def model_from_args(args):
    """Random weights for a variant, or a checkpoint whose shapes decide all."""
    if args.weights == 'random':
        cfg = variant_config(args.variant, args.widths, args.classes, args.act)
        model = build_model(cfg, args.seed)
    else:
        model = load_checkpoint(args.weights, args.act, args.ema)
    return fuse(model) if args.fused else model


def describe(model):
    c = model.cfg
    return (f"widths {'/'.join(map(str, c.widths))} C0 {c.c0} classes {c.classes} "
            f"depths {'/'.join(map(str, c.depths))} act {c.act} "
            f"{'fused' if is_fused(model) else 'unfused'}")


def input_size(args):
    """--size, else the variant's native size (224 for checkpoints)."""
    size = args.size
    if size is None:
        size = VARIANTS[args.variant]['size'] if args.weights == 'random' else 224
    if size <= 0 or size % 32:
        raise SystemExit('--size must be a positive multiple of 32')
    return size


def cmd_export(args):
    model = model_from_args(args)
    size = input_size(args)
    proto = export_onnx(model, args.out, size, args.opset, args.keep_bn)
    print(f'wrote {args.out}: {describe(model)}, opset {args.opset}, '
          f'{len(proto.graph.node)} nodes')


def cmd_convert(args):
    args.weights, args.seed = args.checkpoint, 0
    cmd_export(args)


def cmd_write_checkpoint(args):
    cfg = variant_config(args.variant, args.widths, args.classes, args.act)
    ckpt = write_checkpoint(cfg, args.seed, args.out)
    print(f"wrote {args.out}: {len(ckpt['state_dict_ema'])} entries per state_dict")


def cmd_make_testcase(args):
    model = model_from_args(args)
    size = input_size(args)
    batches = [int(b) for b in args.batches.split(',')]
    peaks = make_testcase(model, args.out, batches, size, args.seed, args.opset,
                          args.keep_bn)
    print(f'{args.out}: {describe(model)}, {size}x{size}, max|logit| per batch: '
          + ', '.join(f'b{b} {p:.6g}' for b, p in peaks))


def cmd_info(args):
    model = model_from_args(args)
    size = input_size(args)
    sections = count_macs(model, size, by_section=True)
    macs = sum(sections.values())
    print(f'{describe(model)} at {size}x{size}')
    print(f'params {count_params(model)} ({count_params(model) / 1e6:.2f} M)  '
          f'state_dict entries {len(model.state_dict())}')
    gflops = 2 * macs / 1e9
    print(f'FLOPs {gflops:.{2 if gflops >= 1 else 4}f} G  (MACs {macs} = {macs / 1e9:.3f} G; '
          'FLOPs = 2 x MACs of Conv and Linear only)')
    for name, m in sections.items():
        print(f'  {name:18s} {m / 1e9:.3f} GMAC')


def cmd_fuse(args):
    args.fused = False
    model = model_from_args(args)
    size = input_size(args)
    fused = fuse(model)
    x = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        rel = max_rel_diff(model(x), fused(x))
    print(f'{describe(model)}: fused vs unfused max rel diff {rel:.3g} at {size}x{size}')
    if args.out:
        torch.save(fused.state_dict(), args.out)
        print(f'wrote fused state_dict to {args.out}')
    if rel > 1e-5:
        raise SystemExit('fused and unfused disagree')


def add_variant_args(p):
    p.add_argument('--variant', choices=VARIANTS, default='S')
    p.add_argument('--widths', type=parse_widths, help='C1,C2,C3,Cf (overrides the variant)')
    p.add_argument('--classes', type=int, help='class count (overrides the variant)')


def add_act_arg(p):
    p.add_argument('--act', choices=ACTIVATIONS, default='relu',
                   help='relu (released configs, default) or silu (paper)')


def add_ema_args(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument('--ema', dest='ema', action='store_true', default=True,
                   help='use state_dict_ema when present (default)')
    g.add_argument('--no-ema', dest='ema', action='store_false', help='use state_dict')


def add_source_args(p):
    """Where the model comes from: a variant with random weights, or a checkpoint."""
    add_variant_args(p)
    add_act_arg(p)
    p.add_argument('--weights', default='random',
                   help="'random' (default) or a checkpoint path; a checkpoint's "
                        "shapes decide widths and classes")
    p.add_argument('--seed', type=int, default=0, help='seed of random weights and inputs')
    add_ema_args(p)


def add_size_arg(p):
    p.add_argument('--size', type=int,
                   help='input H=W, a multiple of 32 (default: 224, cifar 32)')


def add_fused_args(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument('--fused', dest='fused', action='store_true', default=False,
                   help='re-parameterized inference form')
    g.add_argument('--unfused', dest='fused', action='store_false',
                   help='training-time form (default)')


def add_onnx_args(p):
    p.add_argument('--opset', type=int, default=13, choices=OPSETS)
    p.add_argument('--keep-bn', action='store_true',
                   help='keep BatchNormalization nodes (torch folds Conv+BN otherwise)')
    p.add_argument('--out', required=True)


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)

    p = sub.add_parser('export', help='export a model to ONNX')
    for add in (add_source_args, add_fused_args, add_size_arg, add_onnx_args):
        add(p)
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser('convert', help='official timm checkpoint -> ONNX')
    p.add_argument('--checkpoint', required=True)
    for add in (add_act_arg, add_ema_args, add_fused_args, add_size_arg, add_onnx_args):
        add(p)
    p.set_defaults(fn=cmd_convert)

    p = sub.add_parser('write-checkpoint', help='random weights in the official layout')
    add_variant_args(p)
    add_act_arg(p)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True)
    p.set_defaults(fn=cmd_write_checkpoint)

    p = sub.add_parser('make-testcase', help='ONNX backend-style test case')
    for add in (add_source_args, add_fused_args, add_size_arg):
        add(p)
    p.add_argument('--batches', default='1', help='comma-separated batch sizes, one test set each')
    add_onnx_args(p)
    p.set_defaults(fn=cmd_make_testcase)

    p = sub.add_parser('info', help='parameters and FLOPs')
    for add in (add_source_args, add_fused_args, add_size_arg):
        add(p)
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser('fuse', help='check the re-parameterization, optionally save it')
    for add in (add_source_args, add_size_arg):
        add(p)
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--out', help='write the fused state_dict here')
    p.set_defaults(fn=cmd_fuse)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    with torch.no_grad():
        args.fn(args)


if __name__ == '__main__':
    sys.exit(main())
