"""The project's PyTorch ParNet ("Non-deep Networks", Goyal et al.): modules with the official
module and state_dict names, seeded random weights, and the re-parameterization into the
inference form. The command-line tool and the checkpoint/ONNX helpers are in parnet_reference.py.
"""

import argparse
import copy
import os
import sys
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

# Widths are C1/C2/C3/Cf.  'cifar' is this project's own small-input variant
# (the paper's CIFAR models were never released): it keeps the ImageNet
# topology so that 32x32 reaches a 1x1 map before the pool.
VARIANTS = {
    'S': dict(widths=(96, 192, 384, 1280), classes=1000, size=224),
    'M': dict(widths=(128, 256, 512, 2048), classes=1000, size=224),
    'L': dict(widths=(160, 320, 640, 2560), classes=1000, size=224),
    'XL': dict(widths=(200, 400, 800, 3200), classes=1000, size=224),
    'cifar': dict(widths=(64, 128, 256, 512), classes=10, size=32),
}
STREAM_DEPTHS = (4, 5, 5)
ACTIVATIONS = {'relu': nn.ReLU, 'silu': nn.SiLU}
OPSETS = list(range(11, 18))

# Unfused state_dict entries of the official model, as PARNET.md states.
# Every BatchNorm holds 5 entries (weight, bias, running_mean, running_var,
# num_batches_tracked).  A block holds dense conv weight + BN (6), 1x1 conv
# weight + BN (6) and the gate conv weight (1) = 13; a stream block adds the
# identity BN (5) = 18.  14 stream blocks * 18 + 8 other blocks (4 stem,
# downsample, 2 fusion, final) * 13 + 4 fusion-input BNs * 5 + fc weight and
# bias (2) = 252 + 104 + 20 + 2 = 378.
OFFICIAL_UNFUSED_ENTRIES = 378


@dataclass(frozen=True)
class Config:
    widths: Tuple[int, int, int, int]
    classes: int = 1000
    act: str = 'relu'
    stem: Optional[int] = None          # C0; None means min(64, C1)
    depths: Tuple[int, int, int] = STREAM_DEPTHS
    in_channels: int = 3                # image channels (1 for grayscale)

    @property
    def c0(self):
        return self.stem if self.stem is not None else min(64, self.widths[0])


def expected_entries(depths=STREAM_DEPTHS, fused=False):
    """state_dict entry count, as counted above; a fused block keeps only the
    dense weight and bias and the gate weight (3) besides its identity BN."""
    block = 3 if fused else 13
    return sum(depths) * (block + 5) + 8 * block + 4 * 5 + 2


# ----------------------------------------------------------------- modules

def channel_shuffle(x, groups):
    # Sizes come from x.shape (not from Python constants) to mirror the
    # official code, so the exported graph has the same Shape/Div subgraph
    # an export of the authors' model would have.
    n, c, h, w = x.shape
    x = x.reshape(n, groups, c // groups, h, w).transpose(1, 2)
    return x.reshape(n, c, h, w)


class ConvBN(nn.Sequential):
    def __init__(self, cin, cout, kernel, stride, groups):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)


class ConvSigmoid(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, groups=groups, bias=False)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


class Gate(nn.Module):
    """Squeeze-excitation without reduction: GAP -> grouped 1x1 -> sigmoid.

    Blocks without an identity branch double the gate so that its neutral
    value (sigmoid(0) = 0.5) leaves the signal unscaled.
    """

    def __init__(self, cin, cout, groups, doubled):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.cvsig = ConvSigmoid(cin, cout, groups)
        self.doubled = doubled

    def forward(self, x):
        g = self.cvsig(self.pool(x))
        return 2 * g if self.doubled else g


class RepBranches(nn.Module):
    """One ParNet block (the official RepVGGBlock); its attribute names are
    the official state_dict names.  After fuse_block_ rbr_dense is a biased
    3x3 conv and rbr_1x1 is gone."""

    def __init__(self, cin, cout, stride, groups, act):
        super().__init__()
        self.stride, self.groups = stride, groups
        has_identity = cin == cout and stride == 1
        self.rbr_identity = nn.BatchNorm2d(cin) if has_identity else None
        self.rbr_dense = ConvBN(cin, cout, 3, stride, groups)
        one = ConvBN(cin, cout, 1, 1, groups)
        self.rbr_1x1 = nn.Sequential(nn.AvgPool2d(2, 2), one) if stride == 2 else one
        self.se = Gate(cin, cout, groups, doubled=not has_identity)
        self.nonlinearity = ACTIVATIONS[act]()
        self.fused = False

    def forward(self, x):
        y = self.rbr_dense(x)
        if not self.fused:
            y = y + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            idn = self.rbr_identity(x)
            y = y + idn * self.se(idn)
        else:
            y = y * self.se(x)
        y = self.nonlinearity(y)
        return channel_shuffle(y, self.groups) if self.groups > 1 else y


class ParBlock(nn.Module):
    def __init__(self, cin, cout, stride, groups=1, act='relu'):
        super().__init__()
        self.block = RepBranches(cin, cout, stride, groups, act)

    def forward(self, x):
        return self.block(x)


class PairBN(nn.Module):
    """Separate BN on the two fusion inputs: b1 on the stream, b2 on the path."""

    def __init__(self, channels):
        super().__init__()
        self.b1 = nn.BatchNorm2d(channels)
        self.b2 = nn.BatchNorm2d(channels)

    def forward(self, pair):
        a, b = pair
        return self.b1(a), self.b2(b)


class Interleave(nn.Module):
    """Concat with channel 2k from a and 2k+1 from b (the official shuffled concat)."""

    def forward(self, pair):
        a, b = pair
        n, c, h, w = a.shape
        return torch.stack((a, b), dim=2).reshape(n, 2 * c, h, w)


class Head(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(x), 1))


def fusion_stage(c, cout, stride, act, tail=()):
    return nn.Sequential(PairBN(c), Interleave(),
                         ParBlock(2 * c, cout, stride, groups=2, act=act), *tail)


class ParNet(nn.Module):
    """Stem (inits), three streams, downsample + two fusions, final block, head.

    Attribute layout follows the official SimpNet so that checkpoints load
    strictly: inits.0 holds the two stem blocks because the first stream
    starts after both.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        c1, c2, c3, cf = cfg.widths
        act = cfg.act

        def down(cin, cout):
            return ParBlock(cin, cout, 2, act=act)

        def stream(c, depth):
            return nn.Sequential(*[ParBlock(c, c, 1, act=act) for _ in range(depth)])

        self.inits = nn.ModuleList([
            nn.Sequential(down(cfg.in_channels, cfg.c0), down(cfg.c0, c1)),
            down(c1, c2), down(c2, c3)])
        self.streams = nn.ModuleList(
            [stream(c, d) for c, d in zip((c1, c2, c3), cfg.depths)])
        self.downsamples_2 = nn.ModuleList([down(c1, c2), fusion_stage(c2, c3, 2, act)])
        self.combine = fusion_stage(c3, c3, 1, act, tail=(down(c3, cf),))
        self.head = Head(cf, cfg.classes)

    def forward(self, x):
        x1 = self.inits[0](x)
        x2 = self.inits[1](x1)
        x3 = self.inits[2](x2)
        y = self.downsamples_2[0](self.streams[0](x1))
        y = self.downsamples_2[1]((self.streams[1](x2), y))
        y = self.combine((self.streams[2](x3), y))
        return self.head(y)


def variant_config(variant, widths=None, classes=None, act='relu'):
    v = VARIANTS[variant]
    return Config(widths=tuple(widths or v['widths']),
                  classes=classes or v['classes'], act=act)


# ---------------------------------------------------------- random weights

def randomize_(model, seed):
    """Deterministic weights that make BN folding matter.

    Conv weights are He-normal; every BN gets non-trivial statistics and
    affine parameters.  The ranges keep activations near unit scale through
    22 blocks (gamma^2/var averages about 0.45, which offsets the ~2.2x
    variance gain of summing the branches), so logits stay finite and varied.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1, generator=g)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 0.9, generator=g)
                m.bias.normal_(0.0, 0.2, generator=g)
                m.num_batches_tracked.fill_(1000)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, m.in_features ** -0.5, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
    return model


def build_model(cfg, seed=None):
    model = ParNet(cfg)
    if seed is not None:
        randomize_(model, seed)
    return model.eval()


# ------------------------------------------------------------------ fusing

def fold_bn(weight, bn):
    """Fold an eval-mode BN into the conv weight before it (float64)."""
    scale = bn.weight.double() / (bn.running_var.double() + bn.eps).sqrt()
    w = weight.double() * scale.reshape(-1, 1, 1, 1)
    b = bn.bias.double() - bn.running_mean.double() * scale
    return w, b


def fuse_block_(blk: RepBranches):
    w, b = fold_bn(blk.rbr_dense.conv.weight, blk.rbr_dense.bn)
    if blk.stride == 2:
        # avgpool 2x2/2 then 1x1 == 3x3/2 (pad 1) kernel whose bottom-right
        # 2x2 holds w/4: output (i, j) sees input rows 2i-1..2i+1, and the
        # pool window is rows 2i..2i+1.  Exact for even input sizes.
        w1, b1 = fold_bn(blk.rbr_1x1[1].conv.weight, blk.rbr_1x1[1].bn)
        w[:, :, 1:, 1:] += w1 / 4
    else:
        w1, b1 = fold_bn(blk.rbr_1x1.conv.weight, blk.rbr_1x1.bn)
        w[:, :, 1:2, 1:2] += w1
    dense = blk.rbr_dense.conv
    conv = nn.Conv2d(dense.in_channels, dense.out_channels, 3, blk.stride, 1,
                     groups=blk.groups, bias=True)
    with torch.no_grad():
        conv.weight.copy_(w.float())
        conv.bias.copy_((b + b1).float())
    blk.rbr_dense = conv
    blk.rbr_1x1 = None
    blk.fused = True


def fuse(model):
    """Inference form: returns a fused copy; the identity BN, gates, fusion
    BNs, activations and shuffles stay as they are."""
    fused = copy.deepcopy(model)
    for m in fused.modules():
        if isinstance(m, RepBranches) and not m.fused:
            fuse_block_(m)
    return fused.eval()


def is_fused(model):
    return any(isinstance(m, RepBranches) and m.fused for m in model.modules())
