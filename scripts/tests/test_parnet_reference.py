"""Tests of scripts/parnet_reference.py.  Run: /usr/bin/python3 -m pytest -q scripts/tests"""

import functools
import os
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import parnet_reference as pr  # noqa: E402

torch.set_num_threads(2)

SUPPORTED_OPS = {
    'Conv', 'BatchNormalization', 'Relu', 'Sigmoid', 'Mul', 'Add', 'Div', 'Concat',
    'GlobalAveragePool', 'AveragePool', 'MaxPool', 'Pad', 'Gemm', 'MatMul', 'Flatten',
    'Reshape', 'Transpose', 'Identity', 'Softmax', 'Constant', 'Shape', 'Gather',
    'Unsqueeze', 'Squeeze', 'Cast', 'Slice'}
BN_ENTRIES = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


@functools.lru_cache(maxsize=None)
def model(variant, act, seed=0):
    return pr.build_model(pr.variant_config(variant, act=act), seed)


def inputs(batch, size, seed=1):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def run(m, x):
    with torch.no_grad():
        return m(x)


def official_keys(depths=(4, 5, 5)):
    """Official state_dict names, derived from PARNET.md independently of the module."""
    def block(prefix, stride, identity):
        one = f'{prefix}.block.rbr_1x1' + ('.1' if stride == 2 else '')
        keys = [f'{prefix}.block.rbr_dense.conv.weight', f'{one}.conv.weight',
                f'{prefix}.block.se.cvsig.conv.weight']
        keys += [f'{prefix}.block.rbr_dense.bn.{e}' for e in BN_ENTRIES]
        keys += [f'{one}.bn.{e}' for e in BN_ENTRIES]
        if identity:
            keys += [f'{prefix}.block.rbr_identity.{e}' for e in BN_ENTRIES]
        return keys

    keys = []
    for prefix in ('inits.0.0', 'inits.0.1', 'inits.1', 'inits.2', 'downsamples_2.0',
                   'downsamples_2.1.2', 'combine.3'):
        keys += block(prefix, 2, False)
    keys += block('combine.2', 1, False)
    for s, d in enumerate(depths):
        for i in range(d):
            keys += block(f'streams.{s}.{i}', 1, True)
    for bn in ('downsamples_2.1.0.b1', 'downsamples_2.1.0.b2', 'combine.0.b1', 'combine.0.b2'):
        keys += [f'{bn}.{e}' for e in BN_ENTRIES]
    return set(keys + ['head.fc.weight', 'head.fc.bias'])


# ------------------------------------------------------------ structure

@pytest.mark.parametrize('variant', ['S', 'M', 'L', 'XL', 'cifar'])
def test_state_dict_names_and_count_match_official(variant):
    sd = pr.ParNet(pr.variant_config(variant)).state_dict()
    assert len(sd) == pr.OFFICIAL_UNFUSED_ENTRIES == 378
    assert set(sd) == official_keys()


def test_fused_state_dict_keeps_identity_bn_gates_and_fusion_bns():
    sd = pr.fuse(model('cifar', 'relu')).state_dict()
    assert len(sd) == pr.expected_entries(fused=True) == 158
    assert not any('rbr_1x1' in k or 'rbr_dense.conv' in k for k in sd)
    assert 'streams.2.4.block.rbr_dense.bias' in sd
    assert 'streams.2.4.block.rbr_identity.running_var' in sd
    assert 'combine.0.b2.running_mean' in sd


def test_stem_width_is_min_64_c1_and_widths_follow_options():
    narrow = pr.ParNet(pr.Config(widths=(40, 72, 136, 200), classes=7))
    wide = pr.ParNet(pr.Config(widths=(96, 192, 384, 1280)))
    assert narrow.inits[0][0].block.rbr_dense.conv.out_channels == 40
    assert wide.inits[0][0].block.rbr_dense.conv.out_channels == 64
    assert narrow.head.fc.out_features == 7
    assert narrow.combine[3].block.rbr_dense.conv.out_channels == 200


# ------------------------------------------------------- random weights

def test_random_weights_randomize_bn_and_are_deterministic():
    a, b, c = (pr.build_model(pr.variant_config('cifar'), s) for s in (5, 5, 6))
    bn = a.streams[0][0].block.rbr_identity
    assert bn.running_var.min() >= 0.5 and bn.running_var.max() <= 2.0
    assert bn.running_var.std() > 0.1 and bn.running_mean.abs().max() > 0.05
    assert bn.weight.std() > 0.05 and bn.bias.abs().max() > 0.05
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    x = inputs(2, 32)
    assert not torch.allclose(run(a, x), run(c, x))


@pytest.mark.parametrize('act', ['relu', 'silu'])
def test_random_S_logits_are_finite_and_varied(act):
    y = run(model('S', act), inputs(1, 224))
    assert y.shape == (1, 1000)
    assert torch.isfinite(y).all()
    assert y.std() > 0.05 * y.abs().max() > 0


def test_bn_folding_is_exercised():
    """With identity BN statistics the logits would differ clearly."""
    m = model('cifar', 'relu')
    plain = pr.ParNet(m.cfg).eval()
    plain.load_state_dict(m.state_dict())
    for bn in plain.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.reset_parameters()
    x = inputs(4, 32)
    assert pr.max_rel_diff(run(m, x), run(plain, x)) > 0.1


def test_activation_setting_changes_the_model():
    x = inputs(2, 32)
    relu, silu = model('cifar', 'relu'), model('cifar', 'silu')
    assert all(isinstance(a.block.nonlinearity, torch.nn.SiLU)
               for a in silu.modules() if isinstance(a, pr.ParBlock))
    assert pr.max_rel_diff(run(relu, x), run(silu, x)) > 0.1


# ----------------------------------------------------------- re-param

@pytest.mark.parametrize('act', ['relu', 'silu'])
@pytest.mark.parametrize('variant,size,batch', [('S', 224, 1), ('cifar', 32, 4)])
def test_fused_matches_unfused(variant, size, batch, act):
    m = model(variant, act)
    x = inputs(batch, size)
    assert pr.max_rel_diff(run(m, x), run(pr.fuse(m), x)) <= 1e-5


def test_fuse_leaves_original_untouched():
    m = model('cifar', 'relu')
    pr.fuse(m)
    assert not pr.is_fused(m)
    assert isinstance(m.inits[1].block.rbr_1x1[1], pr.ConvBN)


# -------------------------------------------------------------- FLOPs

def test_flops_S_fused_cli(capsys):
    pr.main(['info', '--variant', 'S', '--fused'])
    out = capsys.readouterr().out
    assert 'FLOPs 9.67 G' in out
    assert 'state_dict entries 158' in out


def test_flops_and_params_M():
    m = pr.ParNet(pr.variant_config('M'))
    fused = pr.fuse(m)
    assert round(2 * pr.count_macs(fused, 224) / 1e9, 1) == 17.2
    assert round(pr.count_params(fused) / 1e6, 1) == 35.6
    sections = pr.count_macs(fused, 224, by_section=True)
    assert round(sections['streams.0'] / 1e9, 3) == 1.850
    assert pr.count_macs(m, 224) > pr.count_macs(fused, 224)


# -------------------------------------------------------- checkpoints

def test_checkpoint_round_trip_reads_shapes(tmp_path):
    cfg = pr.Config(widths=(40, 72, 136, 200), classes=7, act='silu')
    path = str(tmp_path / 'ckpt.pth')
    pr.write_checkpoint(cfg, seed=3, path=path)

    raw = torch.load(path)
    assert {'epoch', 'arch', 'state_dict', 'state_dict_ema'} <= set(raw)
    for key in ('state_dict', 'state_dict_ema'):
        assert len(raw[key]) == 378
        assert all(k.startswith('module.') for k in raw[key])

    loaded = pr.load_checkpoint(path, act='silu')
    assert loaded.cfg.widths == (40, 72, 136, 200)
    assert (loaded.cfg.c0, loaded.cfg.classes, loaded.cfg.depths) == (40, 7, (4, 5, 5))
    x = inputs(2, 64)
    ref = run(pr.build_model(cfg, 3), x)
    assert (run(loaded, x) - ref).abs().max() <= 1e-6 * ref.abs().max()

    raw_weights = run(pr.load_checkpoint(path, act='silu', use_ema=False), x)
    assert pr.max_rel_diff(run(pr.build_model(cfg, 4), x), raw_weights) <= 1e-6
    assert pr.max_rel_diff(ref, raw_weights) > 0.01


def test_bare_state_dict_without_prefix_loads(tmp_path):
    m = model('cifar', 'relu')
    path = str(tmp_path / 'bare.pth')
    torch.save(m.state_dict(), path)
    x = inputs(2, 32)
    assert torch.equal(run(pr.load_checkpoint(path), x), run(m, x))


def test_convert_cli_infers_widths(tmp_path, capsys):
    ckpt, out = str(tmp_path / 'c.pth'), str(tmp_path / 'c.onnx')
    pr.main(['write-checkpoint', '--variant', 'cifar', '--widths', '72,104,136,200',
             '--classes', '13', '--seed', '2', '--out', ckpt])
    pr.main(['convert', '--checkpoint', ckpt, '--fused', '--size', '64', '--out', out])
    assert 'widths 72/104/136/200 C0 64 classes 13' in capsys.readouterr().out
    proto = onnx.load(out)
    weights = {i.name: i.dims for i in proto.graph.initializer}
    first_conv = next(n for n in proto.graph.node if n.op_type == 'Conv')
    assert list(weights[first_conv.input[1]]) == [64, 3, 3, 3]
    assert proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 13


# --------------------------------------------------------------- ONNX

def graph_dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize('fused,act,opset,keep_bn', [
    (True, 'silu', 13, False), (False, 'silu', 13, False), (False, 'relu', 13, True),
    (True, 'relu', 11, False), (True, 'silu', 17, False)])
def test_onnx_export(tmp_path, fused, act, opset, keep_bn):
    m = model('cifar', act)
    m = pr.fuse(m) if fused else m
    proto = pr.export_onnx(m, str(tmp_path / 'm.onnx'), 32, opset, keep_bn)
    ops = pr.op_histogram(proto)
    assert set(ops) <= SUPPORTED_OPS, set(ops) - SUPPORTED_OPS
    assert proto.opset_import[0].version == opset
    assert graph_dims(proto.graph.input[0]) == ['batch', 3, 'height', 'width']
    assert graph_dims(proto.graph.output[0]) == ['batch', 10]
    assert (proto.graph.input[0].name, proto.graph.output[0].name) == ('input', 'logits')
    # 22 gates; SiLU has no ONNX op at these opsets, torch writes Sigmoid + Mul
    assert ops['Sigmoid'] == (44 if act == 'silu' else 22)
    assert ops.get('Relu', 0) == (0 if act == 'silu' else 22)
    assert ops['Conv'] == (44 if fused else 66)
    assert ops.get('AveragePool', 0) == (0 if fused else 7)
    assert ops['BatchNormalization'] == (62 if keep_bn else 18)


def test_make_testcase_files_match_model(tmp_path, capsys):
    out = str(tmp_path / 'case')
    pr.main(['make-testcase', '--variant', 'cifar', '--act', 'silu', '--fused', '--seed', '1',
             '--batches', '1,3', '--out', out])
    assert 'max|logit| per batch: b1 ' in capsys.readouterr().out
    graph = onnx.load(os.path.join(out, 'model.onnx')).graph
    ref = pr.fuse(model('cifar', 'silu', seed=1))
    for k, batch in enumerate((1, 3)):
        tensors = []
        for name in ('input_0.pb', 'output_0.pb'):
            t = onnx.TensorProto()
            with open(os.path.join(out, f'test_data_set_{k}', name), 'rb') as f:
                t.ParseFromString(f.read())
            tensors.append(t)
        assert tensors[0].name == graph.input[0].name
        assert tensors[1].name == graph.output[0].name
        x, y = (numpy_helper.to_array(t) for t in tensors)
        assert x.shape == (batch, 3, 32, 32) and y.shape == (batch, 10)
        assert x.dtype == y.dtype == np.float32
        again = run(ref, torch.from_numpy(x.copy())).numpy()
        assert np.abs(again - y).max() <= 1e-6 * np.abs(y).max()
