"""Fixtures of the serving tests: a temporary model repository, a running `parnet serve`, and
reference outputs from `parnet run` on the same model.

Environment (set by tests/serve/serve_test.sh): PARNET_BIN (the parnet program), PARNET_SOURCE
(the source tree)."""
import os
import pathlib
import re
import shutil
import signal
import subprocess
import threading

import numpy as np
import pytest

PARNET = os.environ["PARNET_BIN"]
SOURCE = pathlib.Path(os.environ["PARNET_SOURCE"])
FMNIST = SOURCE / "deploy/models/parnet-fmnist"


def write_model(repo, name, onnx_path, config):
    (repo / name / "1").mkdir(parents=True)
    shutil.copy(onnx_path, repo / name / "1" / "model.onnx")
    (repo / name / "config.pbtxt").write_text(config)


@pytest.fixture(scope="session")
def repository(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(FMNIST, repo / "parnet-fmnist")
    onnx = FMNIST / "1" / "model.onnx"
    write_model(repo, "fmnist-fp16", onnx, """
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP16 dims: [ 1, 32, 32 ] } ]
output [ { name: "logits" data_type: TYPE_FP16 dims: [ 10 ] } ]
""")
    write_model(repo, "fmnist-tinyqueue", onnx, """
max_batch_size: 256
dynamic_batching {
  max_queue_delay_microseconds: 0
  default_queue_policy { max_queue_size: 1 }
}
""")
    write_model(repo, "fmnist-timeout", onnx, """
max_batch_size: 8
dynamic_batching {
  max_queue_delay_microseconds: 20000
  default_queue_policy { default_timeout_microseconds: 1 }
}
""")
    write_model(repo, "fmnist-slowbatch", onnx, """
max_batch_size: 4
dynamic_batching { max_queue_delay_microseconds: 3000000 }
""")
    # A model with dynamic H and W (ParNet's cifar variant, random weights).
    cifar = repo / "cifar.onnx"
    subprocess.run(["/usr/bin/python3", str(SOURCE / "scripts/parnet_reference.py"), "export",
                    "--variant", "cifar", "--fused", "--size", "32", "--seed", "1",
                    "--out", str(cifar)], check=True, stdout=subprocess.DEVNULL)
    write_model(repo, "parnet-cifar", cifar, """
max_batch_size: 4
input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]
dynamic_batching { max_queue_delay_microseconds: 100 }
""")
    cifar.unlink()
    return repo


class Server:
    def __init__(self, repo, extra_args=()):
        self.repository = repo
        self.proc = subprocess.Popen(
            [PARNET, "serve", "--model-repository", str(repo), "--host", "127.0.0.1",
             "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0",
             "--max-message-mb", "8", *extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = {}

        def read():
            for line in self.proc.stdout:
                m = re.search(r"ready: grpc (\d+) http (\d+) metrics (\d+)", line)
                if m:
                    ready["ports"] = tuple(int(p) for p in m.groups())
                    break
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout=120)
        if "ports" not in ready:
            self.proc.kill()
            raise RuntimeError("parnet serve did not become ready: " + self.proc.stderr.read())
        self.grpc_port, self.http_port, self.metrics_port = ready["ports"]
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        self.http_url = f"127.0.0.1:{self.http_port}"

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def server(repository):
    s = Server(repository)
    yield s
    assert s.alive(), "parnet serve died during the tests"
    assert s.stop() == 0


def parnet_run(model, batch, tmp):
    """Logits of `parnet run` on `batch` (the oracle of the serving tests)."""
    inp, out = tmp / "in.npy", tmp / "out.npy"
    np.save(inp, batch)
    subprocess.run([PARNET, "run", "--model", str(model), "--input", str(inp), "--output",
                    str(out)], check=True, stdout=subprocess.DEVNULL)
    return np.load(out)


@pytest.fixture(scope="session")
def fmnist_batch():
    return np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)


@pytest.fixture(scope="session")
def fmnist_reference(fmnist_batch, tmp_path_factory):
    return parnet_run(FMNIST / "1/model.onnx", fmnist_batch, tmp_path_factory.mktemp("run"))


def assert_logits_close(got, want):
    """The repository's parity standard: within 1e-4 of the largest logit, same top-1."""
    assert got.shape == want.shape
    tol = 1e-4 * max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    assert (got.argmax(-1) == want.argmax(-1)).all()
