#!/usr/bin/env python3
"""parnet against its CPU peers, in one run: PyTorch 1.13 (eager, eager channels_last, frozen
TorchScript + optimize_for_inference), ONNX Runtime and OpenVINO, on the same ParNet ONNX models,
the same weights, the same input and the same thread count; plus the machine's sgemm and 3x3-conv
limits measured in the same run. See docs/benchmarks.md.

Run with the bench venv (scripts/setup_bench_venv.sh), which sees Debian's torch and numpy:

    .venv-bench/bin/python scripts/bench_peers.py --out-dir out/bench       # S,M x batch 1,8, T=2
    .venv-bench/bin/python scripts/bench_peers.py --quick                    # smoke test (cifar)

Every number reported is a median: per measurement, the median latency of the timed runs; over
the --repeats, the median of those medians. Speedup = peer_ms / parnet_ms (> 1: parnet faster).
"""

import argparse
import csv
import ctypes
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, 'scripts')
REFERENCE = os.path.join(SCRIPTS, 'parnet_reference.py')
DEBIAN_PYTHON = '/usr/bin/python3'
TORCH_MODES = ('torch_eager', 'torch_eager_cl', 'torch_jit')
PEERS = ('parnet',) + TORCH_MODES + ('onnxruntime', 'openvino')
PEER_GROUP = {'parnet': 'parnet', 'onnxruntime': 'ORT', 'openvino': 'OpenVINO',
              **{m: 'PyTorch' for m in TORCH_MODES}}
TOLERANCE = 1e-3  # of max |logit| of PyTorch eager


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', help='variants of parnet_reference.py, comma-separated '
                   '(default S,M; --quick: cifar)')
    p.add_argument('--batches', help='batch sizes, comma-separated (default 1,8; --quick: 1)')
    p.add_argument('--threads', type=int, default=2, help='threads of every peer (default 2)')
    p.add_argument('--repeats', type=int, help='whole-measurement repeats (default 3; --quick: 1)')
    p.add_argument('--seconds', type=float,
                   help='timed seconds per measurement (default 3; --quick: 0.3)')
    p.add_argument('--warmup', type=int, help='untimed runs before each measurement '
                   '(default 3; --quick: 1)')
    p.add_argument('--min-iters', type=int, help='timed runs at least (default 10; --quick: 3)')
    p.add_argument('--size', type=int, help="H = W (default: the variant's, 224 for S/M)")
    p.add_argument('--act', default='silu', choices=('relu', 'silu'))
    p.add_argument('--seed', type=int, default=0, help='seed of the random weights and input')
    p.add_argument('--parnet', default=os.path.join(ROOT, 'build/runtime/cli/parnet'),
                   help='parnet CLI binary')
    p.add_argument('--peers', default=','.join(PEERS),
                   help=f'subset of {",".join(PEERS)} (parnet and torch_eager are always run)')
    p.add_argument('--torch-blas-threads', type=int,
                   help="OpenBLAS threads under PyTorch's non-oneDNN convolutions (default: "
                   "--threads; see docs/benchmarks.md)")
    p.add_argument('--no-limit', action='store_true', help='skip the sgemm / conv limit')
    p.add_argument('--out-dir', default=os.path.join(ROOT, 'out', 'bench'),
                   help='results.json and results.csv go here (default out/bench)')
    p.add_argument('--quick', action='store_true', help='tiny smoke-test run')
    p.add_argument('--limit-worker', action='store_true', help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    quick = dict(models='cifar', batches='1', repeats=1, seconds=0.3, warmup=1, min_iters=3)
    full = dict(models='S,M', batches='1,8', repeats=3, seconds=3.0, warmup=3, min_iters=10)
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.models = [m.strip() for m in a.models.split(',') if m.strip()]
    a.batches = [int(b) for b in a.batches.split(',')]
    a.peers = [q for q in PEERS if q in set(a.peers.split(',')) | {'parnet', 'torch_eager'}]
    if a.threads < 1:
        p.error('--threads must be >= 1')
    if a.torch_blas_threads is None:
        a.torch_blas_threads = a.threads
    return a


ARGS = parse_args()
T = ARGS.threads
AFFINITY = os.sched_getaffinity(0)
# Before torch / OpenBLAS / OpenMP are loaded: their pools start with T threads. Each peer is
# also set through its own API below, and read back.
os.environ['OMP_NUM_THREADS'] = str(T)
os.environ['OPENBLAS_NUM_THREADS'] = str(T)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, SCRIPTS)
import parnet_reference as ref  # noqa: E402


def log(msg):
    print(msg, flush=True)


class ThreadCheckError(RuntimeError):
    pass


def check(cond, what):
    if not cond:
        raise ThreadCheckError(what)


# ----------------------------------------------------------------- timing

def cpu_seconds():
    """CPU time of this process and of its waited-for children."""
    s = os.times()
    return s.user + s.system + s.children_user + s.children_system


CLK_TCK = os.sysconf('SC_CLK_TCK')


def system_busy():
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    v = [int(t) for t in open('/proc/stat').readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4] - v[7]) / CLK_TCK, v[7] / CLK_TCK


class Load:
    """This process's (and its children's) cores, other processes' cores and the hypervisor's
    steal, averaged over a measurement: evidence of threads used and of a noisy machine."""

    def __init__(self):
        self.c0, self.b0, self.w0 = cpu_seconds(), system_busy(), time.perf_counter()

    def done(self):
        w = time.perf_counter() - self.w0
        ours = (cpu_seconds() - self.c0) / w
        b1 = system_busy()
        return {'cpu_per_wall': ours, 'other_cores': max(0.0, (b1[0] - self.b0[0]) / w - ours),
                'steal_cores': (b1[1] - self.b0[1]) / w}


def time_runs(fn, warmup, seconds, min_iters):
    """Warm-up, then timed runs until `seconds` passed and min_iters done.
    Returns the latencies (ms) and the Load while timing."""
    for _ in range(warmup):
        fn()
    lat = []
    load = Load()
    w0 = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        lat.append((time.perf_counter() - t0) * 1e3)
        if len(lat) >= min_iters and time.perf_counter() - w0 >= seconds:
            break
    return lat, load.done()


# ------------------------------------------------------------------ peers

class Peer:
    name = ''
    settings = {}

    def measure(self, warmup, seconds, min_iters):
        lat, load = time_runs(self.run, warmup, seconds, min_iters)
        return {'median_ms': statistics.median(lat), 'runs': len(lat), **load,
                'latencies_ms': lat}


class TorchPeer(Peer):
    def __init__(self, mode, model, x):
        self.name = mode
        self.x = x
        model = model.eval()
        if mode == 'torch_eager':
            self.mod = model
        elif mode == 'torch_eager_cl':
            import copy
            self.mod = copy.deepcopy(model).to(memory_format=torch.channels_last)
            self.x = x.contiguous(memory_format=torch.channels_last)
        else:
            self.mod, how = self._jit(model, x)
            self.name_detail = how
        self.settings = {'mode': mode, 'inference_mode': True,
                         'detail': getattr(self, 'name_detail', '')}

    @staticmethod
    def _jit(model, x):
        with torch.no_grad():
            try:
                s, how = torch.jit.script(model), 'script'
            except Exception as e:  # noqa: BLE001  (fall back to trace)
                why = str(e).strip().splitlines()[0][:80]
                log(f'  torch.jit.script failed ({why}); using torch.jit.trace at this batch')
                s, how = torch.jit.trace(model, x), 'trace'
            s = torch.jit.optimize_for_inference(torch.jit.freeze(s.eval()))
        return s, f'jit.{how} + freeze + optimize_for_inference'

    def run(self):
        with torch.inference_mode():
            return self.mod(self.x)

    def output(self):
        with torch.inference_mode():
            return self.run().float().contiguous().numpy().copy()

    def measure(self, *a):
        torch.set_num_threads(T)
        check(torch.get_num_threads() == T,
              f'torch.get_num_threads() = {torch.get_num_threads()}, wanted {T}')
        # Debian's torch (BLAS_INFO=generic) runs the convolutions that do not go to oneDNN
        # (most NCHW ones in eager mode) as im2col + sgemm in libblas.so.3 = OpenBLAS, whose
        # own thread pool torch.set_num_threads does not touch.
        blas, _ = openblas()
        nb = ARGS.torch_blas_threads
        if blas is not None:
            blas.openblas_set_num_threads(nb)
            check(blas.openblas_get_num_threads() == nb,
                  f'openblas_get_num_threads() = {blas.openblas_get_num_threads()}, wanted {nb}')
        self.settings['torch_threads'] = torch.get_num_threads()
        self.settings['openblas_threads'] = blas.openblas_get_num_threads() if blas else None
        return super().measure(*a)


class OrtPeer(Peer):
    name = 'onnxruntime'

    def __init__(self, onnx_path, x):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = T
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(onnx_path, so, providers=['CPUExecutionProvider'])
        got = self.sess.get_session_options()
        check(got.intra_op_num_threads == T and got.inter_op_num_threads == 1,
              f'ORT session threads intra {got.intra_op_num_threads} inter '
              f'{got.inter_op_num_threads}, wanted {T}/1')
        check(self.sess.get_providers() == ['CPUExecutionProvider'],
              f'ORT providers {self.sess.get_providers()}')
        self.feed = {self.sess.get_inputs()[0].name: x}
        self.settings = {'version': ort.__version__, 'providers': self.sess.get_providers(),
                         'graph_optimization_level': str(got.graph_optimization_level),
                         'execution_mode': str(got.execution_mode),
                         'intra_op_num_threads': got.intra_op_num_threads,
                         'inter_op_num_threads': got.inter_op_num_threads}

    def run(self):
        return self.sess.run(None, self.feed)

    def output(self):
        return self.run()[0]


class OpenVinoPeer(Peer):
    name = 'openvino'

    def __init__(self, core, onnx_path, x):
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints
        model = core.read_model(onnx_path)
        # Static input shape per batch, as a deployment would compile it.
        model.reshape({model.inputs[0].get_any_name(): list(x.shape)})
        cfg = {hints.performance_mode: hints.PerformanceMode.LATENCY,
               props.inference_num_threads: T,
               # FP32 everywhere: on CPUs with AMX/avx512_bf16 OpenVINO would default to bf16.
               hints.inference_precision: ov.Type.f32}
        self.compiled = core.compile_model(model, 'CPU', cfg)
        got_threads = int(self.compiled.get_property(props.inference_num_threads))
        got_hint = self.compiled.get_property(hints.performance_mode)
        got_prec = self.compiled.get_property(hints.inference_precision)
        got_streams = int(self.compiled.get_property(props.num_streams))
        check(got_threads == T, f'OpenVINO INFERENCE_NUM_THREADS = {got_threads}, wanted {T}')
        check(str(got_hint).split('.')[-1] == 'LATENCY', f'OpenVINO PERFORMANCE_HINT {got_hint}')
        check(got_prec == ov.Type.f32, f'OpenVINO INFERENCE_PRECISION_HINT {got_prec}')
        self.req = self.compiled.create_infer_request()
        self.x = x
        self.settings = {'version': ov.__version__, 'device': 'CPU',
                         'PERFORMANCE_HINT': str(got_hint), 'INFERENCE_NUM_THREADS': got_threads,
                         'INFERENCE_PRECISION_HINT': str(got_prec), 'NUM_STREAMS': got_streams,
                         'ENABLE_CPU_PINNING': self.compiled.get_property('ENABLE_CPU_PINNING'),
                         'EXECUTION_MODE_HINT': str(self.compiled.get_property(
                             'EXECUTION_MODE_HINT')),
                         'input_shape': list(x.shape)}

    def run(self):
        return self.req.infer({0: self.x})

    def output(self):
        self.run()
        return np.array(self.req.get_output_tensor(0).data, copy=True)


class ParnetPeer(Peer):
    """The CLI in a subprocess: `parnet bench` times itself (p50 of its timed runs)."""
    name = 'parnet'

    def __init__(self, binary, onnx_path, x, size, workdir):
        self.binary, self.onnx, self.size, self.batch = binary, onnx_path, size, x.shape[0]
        self.workdir = workdir
        self.settings = {'binary': binary, 'threads_flag': T}
        self.inp = os.path.join(workdir, f'input_b{self.batch}.npy')
        np.save(self.inp, x)

    def _cmd(self, *args):
        r = subprocess.run([self.binary, *args], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f'{" ".join([self.binary, *args])} failed ({r.returncode}):\n'
                               f'{r.stdout}{r.stderr}')
        return r

    def output(self):
        out = os.path.join(self.workdir, f'parnet_out_b{self.batch}.npy')
        self._cmd('run', '--model', self.onnx, '--input', self.inp, '--output', out,
                  '--threads', str(T), '--top', '1')
        return np.load(out)

    def measure(self, warmup, seconds, min_iters):
        js = os.path.join(self.workdir, 'parnet_bench.json')
        load = Load()
        self._cmd('bench', '--model', self.onnx, '--batch', str(self.batch), '--size',
                  str(self.size), '--threads', str(T), '--warmup', str(warmup), '--seconds',
                  str(seconds), '--min-iters', str(min_iters), '--json', js)
        load = load.done()  # includes model import and warm-up: rough for parnet
        with open(js) as f:
            d = json.load(f)
        m = d.get('machine', {})
        check(int(m.get('threads', -1)) == T, f'parnet bench reports threads {m.get("threads")}, '
              f'wanted {T}')
        c = d['cases'][0]
        check(int(c['batch']) == self.batch, f'parnet bench case batch {c["batch"]}')
        self.settings.update({'threads_reported': m.get('threads'),
                              'affinity': m.get('affinity'), 'backend': m.get('backend'),
                              'cpu': m.get('cpu')})
        return {'median_ms': float(c['p50_ms']), 'runs': len(c.get('latencies_ms', [])),
                **load, 'latencies_ms': c.get('latencies_ms', []),
                'p90_ms': c.get('p90_ms'), 'p99_ms': c.get('p99_ms'),
                'parnet_gflops': c.get('gflops')}


# ------------------------------------------------------------------ limit

def openblas():
    """The OpenBLAS that numpy loaded (Debian: libblas.so.3 -> openblas-pthread), via ctypes."""
    np.dot(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
    with open('/proc/self/maps') as f:
        libs = sorted({ln.split()[-1] for ln in f if 'blas' in ln.split()[-1].lower()
                       and '.so' in ln})
    for path in libs:
        lib = ctypes.CDLL(path)
        if hasattr(lib, 'openblas_set_num_threads'):
            lib.openblas_get_config.restype = ctypes.c_char_p
            return lib, path
    return None, ', '.join(libs)


def onednn_impl(fn):
    """oneDNN implementation name of the convolution that fn runs (torch's verbose mode)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                fn()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        lines = tmp.read().decode(errors='replace').splitlines()
    impls = [ln.split(',')[4] for ln in lines
             if ln.startswith('onednn_verbose,exec,cpu,convolution')]
    return impls[-1] if impls else 'none (no oneDNN convolution ran)'


class Limit:
    """sgemm 2048^3 (numpy + OpenBLAS) and 3x3 conv 64->64, 56x56, batch 8 (torch, oneDNN),
    FP32 at T threads: median GFLOP/s."""

    def __init__(self):
        n = 2048
        g = np.random.default_rng(0)
        self.a = g.standard_normal((n, n), dtype=np.float32)
        self.b = g.standard_normal((n, n), dtype=np.float32)
        self.gemm_flop = 2.0 * n ** 3
        self.blas, self.blas_path = openblas()
        self.info = {'sgemm': f'numpy.matmul float32 {n}x{n}x{n}, numpy {np.__version__}, '
                              f'BLAS {self.blas_path}'}
        if self.blas is not None:
            self.blas.openblas_set_num_threads(T)
            got = self.blas.openblas_get_num_threads()
            check(got == T, f'openblas_get_num_threads() = {got}, wanted {T}')
            self.info['sgemm_blas_config'] = self.blas.openblas_get_config().decode()
            self.info['sgemm_threads'] = got
        else:
            log(f'  warning: numpy BLAS is not OpenBLAS ({self.blas_path}): threads not checked')
        nb, c, hw = 8, 64, 56
        self.x = torch.randn(nb, c, hw, hw).contiguous(memory_format=torch.channels_last)
        self.w = torch.randn(c, c, 3, 3).contiguous(memory_format=torch.channels_last)
        self.conv_flop = 2.0 * nb * c * c * 9 * hw * hw
        impl = onednn_impl(self._conv)
        self.info['conv'] = (f'torch.nn.functional.conv2d float32 channels_last, {c}->{c} 3x3 '
                             f'pad 1, {hw}x{hw}, batch {nb}; torch {torch.__version__}, oneDNN '
                             f'(mkldnn) implementation {impl}')
        self.info['conv_onednn_impl'] = impl

    def _conv(self):
        with torch.inference_mode():
            return torch.nn.functional.conv2d(self.x, self.w, padding=1)

    def measure(self, warmup, seconds, min_iters):
        if self.blas is not None:
            self.blas.openblas_set_num_threads(T)
            check(self.blas.openblas_get_num_threads() == T, 'OpenBLAS threads changed')
        torch.set_num_threads(T)
        check(torch.get_num_threads() == T, 'torch threads changed')
        out = {}
        for key, fn, flop in (('conv', self._conv, self.conv_flop),
                              ('sgemm', lambda: np.matmul(self.a, self.b), self.gemm_flop)):
            lat, load = time_runs(fn, max(1, warmup), seconds, max(3, min_iters // 2))
            med = statistics.median(lat)
            out[key] = {'median_ms': med, 'gflops': flop / (med * 1e-3) / 1e9, 'runs': len(lat),
                        **load}
        return out


def measure_limit():
    """One limit measurement in a child process of this script, so that its 2048^3 sgemm and
    its thread pools stay out of the peers' process."""
    cmd = [sys.executable, os.path.abspath(__file__), '--limit-worker', '--threads', str(T),
           '--seconds', str(min(ARGS.seconds, 2.0)), '--warmup', str(ARGS.warmup),
           '--min-iters', str(ARGS.min_iters)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f'limit measurement failed ({r.returncode}):\n{r.stdout}{r.stderr}')
    return json.loads(r.stdout.strip().splitlines()[-1])


def limit_worker():
    lim = Limit()
    out = lim.measure(ARGS.warmup, ARGS.seconds, ARGS.min_iters)
    out['info'] = lim.info
    print(json.dumps(out))
    return 0


# ------------------------------------------------------------------- main

def export_models(models, size, tmp):
    """Each variant exported once with the reference CLI (Debian python), then rebuilt here
    with the same seed: the same weights in both (and checked through ORT's output)."""
    out = {}
    for v in models:
        path = os.path.join(tmp, f'parnet_{v}_{ARGS.act}_fused_seed{ARGS.seed}.onnx')
        cmd = [DEBIAN_PYTHON, REFERENCE, 'export', '--variant', v, '--weights', 'random',
               '--seed', str(ARGS.seed), '--act', ARGS.act, '--fused', '--out', path]
        if size:
            cmd += ['--size', str(size)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f'export of {v} failed:\n{r.stdout}{r.stderr}')
        log(f'  {r.stdout.strip()}')
        cfg = ref.variant_config(v, None, None, ARGS.act)
        model = ref.fuse(ref.build_model(cfg, ARGS.seed)).eval()
        sz = size or ref.VARIANTS[v]['size']
        macs = ref.count_macs(model, sz)
        out[v] = {'onnx': path, 'model': model, 'size': sz, 'gflop_per_image': 2 * macs / 1e9}
    return out


def make_peers(model_info, batch, core, workdir):
    m = model_info
    g = torch.Generator().manual_seed(ARGS.seed + 1000 + batch)
    xt = torch.randn(batch, 3, m['size'], m['size'], generator=g)
    x = xt.numpy().astype(np.float32)
    peers, errors = {}, {}
    for name in ARGS.peers:
        try:
            if name == 'parnet':
                peers[name] = ParnetPeer(ARGS.parnet, m['onnx'], x, m['size'], workdir)
            elif name in TORCH_MODES:
                peers[name] = TorchPeer(name, m['model'], xt)
            elif name == 'onnxruntime':
                peers[name] = OrtPeer(m['onnx'], x)
            elif name == 'openvino':
                peers[name] = OpenVinoPeer(core, m['onnx'], x)
        except ThreadCheckError:
            raise
        except Exception as e:  # noqa: BLE001  (a peer that cannot load is reported, not fatal)
            if name in ('parnet', 'torch_eager'):
                raise
            errors[name] = f'{type(e).__name__}: {e}'
            log(f'  {name} left out: {errors[name][:300]}')
    return peers, errors


def check_outputs(peers):
    """Every peer against PyTorch eager, |diff| <= 1e-3 x max |logit|."""
    refy = peers['torch_eager'].output()
    scale = float(np.abs(refy).max())
    res = {}
    for name, p in peers.items():
        y = p.output()
        if y.shape != refy.shape:
            res[name] = {'ok': False, 'max_abs_diff': None, 'rel': None,
                         'why': f'shape {y.shape} vs {refy.shape}'}
            continue
        d = float(np.abs(y.astype(np.float64) - refy).max())
        res[name] = {'ok': d <= TOLERANCE * scale, 'max_abs_diff': d, 'rel': d / scale}
    return res, scale


def fmt(v, spec):
    return '-' if v is None else format(v, spec)


def main():
    a = ARGS
    if a.limit_worker:
        return limit_worker()
    os.makedirs(a.out_dir, exist_ok=True)
    if 'parnet' in a.peers and not os.access(a.parnet, os.X_OK):
        raise SystemExit(f'parnet binary not found: {a.parnet} (build it, or --parnet PATH)')
    torch.set_num_threads(T)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    check(torch.get_num_threads() == T, f'torch.get_num_threads() = {torch.get_num_threads()}')
    core = None
    if 'openvino' in a.peers:
        import openvino as ov
        core = ov.Core()
    versions = {'python': platform.python_version(), 'numpy': np.__version__,
                'torch': torch.__version__}
    for mod in ('onnxruntime', 'openvino'):
        if any(PEER_GROUP.get(p) in ('ORT', 'OpenVINO') for p in a.peers):
            try:
                versions[mod] = __import__(mod).__version__
            except ImportError:
                pass
    log(f'threads {T} (OpenBLAS under torch: {a.torch_blas_threads}), models {",".join(a.models)}, batches {",".join(map(str, a.batches))}, '
        f'repeats {a.repeats}, {a.seconds:g} s per measurement, warm-up {a.warmup}, '
        f'min {a.min_iters} runs; peers {",".join(a.peers)}')
    log('versions: ' + ', '.join(f'{k} {v}' for k, v in versions.items()))

    tmp = tempfile.mkdtemp(prefix='bench_peers_')
    log(f'exporting to {tmp}')
    models = export_models(a.models, a.size, tmp)

    cases, failed_checks = [], []
    for v in a.models:
        for b in a.batches:
            log(f'setting up {v} batch {b}')
            peers, errors = make_peers(models[v], b, core, tmp)
            failed_checks += [f'{v} b{b} {n} (did not load)' for n in errors]
            checks, scale = check_outputs(peers)
            for name, c in checks.items():
                log(f'  output check {name:15s} max|diff| {fmt(c["max_abs_diff"], ".3g"):>9s} '
                    f'= {fmt(c["rel"], ".2e")} of max|logit| {scale:.4g}  '
                    f'{"ok" if c["ok"] else "FAILED"}')
                if not c['ok']:
                    failed_checks.append(f'{v} b{b} {name}')
            cases.append({'model': v, 'batch': b, 'size': models[v]['size'],
                          'gflop_per_image': models[v]['gflop_per_image'], 'peers': peers,
                          'checks': checks, 'max_logit': scale, 'errors': errors,
                          'runs': {n: [] for n in peers}})

    limit_runs = []
    for r in range(a.repeats):
        log(f'repeat {r + 1}/{a.repeats}')
        if not a.no_limit:
            lr = measure_limit()
            limit_runs.append(lr)
            log(f'  limit: sgemm {lr["sgemm"]["gflops"]:.1f} GFLOP/s, '
                f'conv {lr["conv"]["gflops"]:.1f} GFLOP/s')
        for c in cases:
            names = list(c['peers'])
            k = r % len(names)  # rotate the order each repeat
            for name in names[k:] + names[:k]:
                time.sleep(0.2)  # let the previous peer's spinning threads go to sleep
                m = c['peers'][name].measure(a.warmup, a.seconds, a.min_iters)
                check(os.sched_getaffinity(0) == AFFINITY,
                      f'{name} changed the CPU affinity of the main thread to '
                      f'{sorted(os.sched_getaffinity(0))}')
                c['runs'][name].append(m)
                log(f'  {c["model"]} b{c["batch"]} {name:15s} {m["median_ms"]:9.3f} ms  '
                    f'({m["runs"]} runs; cores: ours {m["cpu_per_wall"]:.2f}, other processes '
                    f'{m["other_cores"]:.2f}, steal {m["steal_cores"]:.2f})')
                if m['other_cores'] + m['steal_cores'] > 0.2:
                    log('  warning: the machine was busy with something else: rerun when idle')
                if m['cpu_per_wall'] > T + 0.3 and name != 'parnet':
                    log(f'  warning: {name} used {m["cpu_per_wall"]:.2f} cores, more than {T}')

    # ------------------------------------------------------------ summary
    lim = None
    if limit_runs:
        lim = {k: {'gflops': statistics.median(x[k]['gflops'] for x in limit_runs),
                   'per_repeat_gflops': [x[k]['gflops'] for x in limit_runs]}
               for k in ('sgemm', 'conv')}
        lim['info'] = info = limit_runs[0]['info']
        log('')
        log(f'machine limit at {T} threads (median of {len(limit_runs)}, separate process):')
        log(f'  sgemm {lim["sgemm"]["gflops"]:8.1f} GFLOP/s  {info["sgemm"]}')
        log(f'  conv  {lim["conv"]["gflops"]:8.1f} GFLOP/s  {info["conv"]}')
    conv_lim = lim['conv']['gflops'] if lim else None

    rows, out_cases = [], []
    for c in cases:
        gfi, b = c['gflop_per_image'], c['batch']
        summ = {}
        for name, runs in c['runs'].items():
            meds = [x['median_ms'] for x in runs]
            ms = statistics.median(meds)
            gf = gfi * b / (ms * 1e-3)
            summ[name] = {'median_ms': ms, 'images_per_s': b * 1e3 / ms, 'gflops': gf,
                          'conv_limit_share': gf / conv_lim if conv_lim else None,
                          'per_repeat_ms': meds,
                          'spread': (max(meds) - min(meds)) / ms,
                          'cpu_per_wall': statistics.median(x['cpu_per_wall'] for x in runs),
                          'other_cores': statistics.median(x['other_cores'] for x in runs),
                          'steal_cores': statistics.median(x['steal_cores'] for x in runs),
                          'output_ok': c['checks'][name]['ok'],
                          'output_rel_diff': c['checks'][name]['rel']}
            if name == 'parnet':
                summ[name]['parnet_gflops_reported'] = statistics.median(
                    x['parnet_gflops'] for x in runs if x.get('parnet_gflops') is not None) \
                    if any(x.get('parnet_gflops') is not None for x in runs) else None
        pms = summ['parnet']['median_ms']
        for s in summ.values():
            s['speedup'] = s['median_ms'] / pms
        torch_ok = [n for n in TORCH_MODES if n in summ and summ[n]['output_ok']]
        best_torch = min(torch_ok, key=lambda n: summ[n]['median_ms']) if torch_ok else None

        log('')
        log(f'== ParNet-{c["model"]} ({a.act}, fused) batch {b}, {c["size"]}x{c["size"]}, '
            f'{gfi:.3f} GFLOP/image, {T} threads, median of {a.repeats} ==')
        log(f'  {"peer":17s} {"ms":>9s} {"images/s":>9s} {"GFLOP/s":>8s} {"%conv":>6s} '
            f'{"spread":>6s} {"speedup":>8s}  output')
        for name, s in summ.items():
            mark = '*' if name == best_torch else ' '
            log(f'  {name + mark:17s} {s["median_ms"]:9.3f} {s["images_per_s"]:9.1f} '
                f'{s["gflops"]:8.1f} {fmt(s["conv_limit_share"] and 100 * s["conv_limit_share"], "5.1f"):>6s} '
                f'{100 * s["spread"]:5.1f}% {s["speedup"]:8.2f}  '
                f'{"ok" if s["output_ok"] else "FAILED"} ({s["output_rel_diff"]:.1e})')
        ratio = {}
        parts = []
        for label, cands in (('best PyTorch', [best_torch] if best_torch else []),
                             ('ORT', ['onnxruntime']), ('OpenVINO', ['openvino'])):
            cands = [n for n in cands if n in summ and summ[n]['output_ok']]
            if cands:
                ratio[label] = summ[cands[0]]['speedup']
                extra = f' ({cands[0]})' if label == 'best PyTorch' else ''
                parts.append(f'{label}{extra} {ratio[label]:.2f}x')
        ok = '' if summ['parnet']['output_ok'] else '  [parnet output check FAILED]'
        log('  parnet vs ' + ', '.join(parts) + '  (peer ms / parnet ms; >1: parnet faster)'
            + ok)
        log('  * fastest PyTorch mode; %conv: share of the conv limit')

        for name, s in summ.items():
            rows.append({'model': c['model'], 'batch': b, 'size': c['size'], 'threads': T,
                         'peer': name, 'median_ms': round(s['median_ms'], 4),
                         'images_per_s': round(s['images_per_s'], 2),
                         'gflops': round(s['gflops'], 2),
                         'conv_limit_share': (round(s['conv_limit_share'], 4)
                                              if s['conv_limit_share'] else ''),
                         'speedup_vs_parnet': round(s['speedup'], 4),
                         'best_torch': int(name == best_torch),
                         'spread': round(s['spread'], 4), 'repeats': len(s['per_repeat_ms']),
                         'cpu_per_wall': round(s['cpu_per_wall'], 3),
                         'other_cores': round(s['other_cores'] + s['steal_cores'], 3),
                         'output_ok': int(s['output_ok']),
                         'output_rel_diff': f'{s["output_rel_diff"]:.3e}'})
        out_cases.append({
            'model': c['model'], 'act': a.act, 'fused': True, 'batch': b, 'size': c['size'],
            'gflop_per_image': gfi, 'max_logit': c['max_logit'], 'best_torch': best_torch,
            'parnet_vs': ratio, 'summary': summ, 'peer_errors': c['errors'],
            'settings': {n: p.settings for n, p in c['peers'].items()},
            'repeats': {n: runs for n, runs in c['runs'].items()}})

    result = {'threads': T, 'torch_blas_threads': a.torch_blas_threads, 'repeats': a.repeats, 'seconds': a.seconds, 'warmup': a.warmup,
              'min_iters': a.min_iters, 'seed': a.seed, 'tolerance': TOLERANCE,
              'versions': versions, 'machine': {'cpu': cpu_name(), 'cores': os.cpu_count(),
                                                'affinity': sorted(os.sched_getaffinity(0)),
                                                'platform': platform.platform()},
              'limit': lim, 'cases': out_cases, 'output_check_failures': failed_checks}
    js, cv = os.path.join(a.out_dir, 'results.json'), os.path.join(a.out_dir, 'results.csv')
    with open(js, 'w') as f:
        json.dump(result, f, indent=1, default=str)
    with open(cv, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        for k in ('sgemm', 'conv') if lim else ():  # the machine limit, same columns
            w.writerow({'model': '', 'batch': '', 'size': '', 'threads': T, 'peer': f'limit_{k}',
                        'gflops': round(lim[k]['gflops'], 2), 'repeats': a.repeats})
    shutil.rmtree(tmp, ignore_errors=True)
    log('')
    log(f'wrote {js} and {cv}')
    if failed_checks:
        log('FAILED (output check, or peer did not load): ' + ', '.join(failed_checks))
        return 1
    return 0


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for ln in f:
                if ln.startswith('model name'):
                    return ln.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == '__main__':
    try:
        sys.exit(main())
    except ThreadCheckError as e:
        sys.exit(f'thread check failed: {e}')
