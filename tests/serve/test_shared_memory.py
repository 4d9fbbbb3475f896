"""Triton's system shared-memory extension with Triton's own clients: tensors read from and
written to regions the client registered give the same logits as `parnet run`, every misuse gets
a code and a message naming it, registration is off unless --allow-client-shm, a region stays
mapped for a request in flight, and an owner that shrinks its object fails that request instead
of killing the server."""
import concurrent.futures
import os
import pathlib
import subprocess
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from conftest import Server, assert_logits_close
from test_serve import MODEL, http_post, run_perf_analyzer, stub

LOGITS_BYTES = 8 * 10 * 4


@pytest.fixture(scope="module")
def shm_server(repository):
    s = Server(repository, ["--allow-client-shm"])
    yield s
    assert s.alive(), "parnet serve died during the shared memory tests"
    assert s.stop() == 0


class Regions:
    """System shared memory regions made by tritonclient's helpers; destroyed at the end."""

    def __init__(self):
        self.handles = []

    def make(self, name, byte_size, data=None):
        key = f"/parnet-test-{os.getpid()}-{name}"
        handle = shm.create_shared_memory_region(name, key, byte_size)
        if data is not None:
            shm.set_shared_memory_region(handle, [data])
        self.handles.append(handle)
        return key, handle

    def close(self):
        for h in self.handles:
            shm.destroy_shared_memory_region(h)


@pytest.fixture
def regions():
    r = Regions()
    yield r
    r.close()


def client_for(server, protocol):
    if protocol == "grpc":
        return grpcclient, grpcclient.InferenceServerClient(server.grpc_url)
    return httpclient, httpclient.InferenceServerClient(server.http_url)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_tensors_in_shared_memory_match_parnet_run(shm_server, regions, fmnist_batch,
                                                   fmnist_reference, protocol):
    module, client = client_for(shm_server, protocol)
    in_key, _ = regions.make(f"in-{protocol}", fmnist_batch.nbytes, fmnist_batch)
    out_key, out_handle = regions.make(f"out-{protocol}", 64 + LOGITS_BYTES)
    client.register_system_shared_memory("in", in_key, fmnist_batch.nbytes)
    client.register_system_shared_memory("out", out_key, 64 + LOGITS_BYTES)
    try:
        inp = module.InferInput("input", list(fmnist_batch.shape), "FP32")
        inp.set_shared_memory("in", fmnist_batch.nbytes)
        out = module.InferRequestedOutput("logits")
        out.set_shared_memory("out", LOGITS_BYTES, offset=64)
        result = client.infer(MODEL, [inp], outputs=[out], request_id="s1")
        # The data went to the region, not the message, which says where.
        output = result.get_output("logits")
        # As Triton 2.51 answers (checked against it): gRPC keeps an empty raw entry.
        if protocol == "grpc":
            assert list(result.get_response().raw_output_contents) == [b""]
            assert list(output.shape) == [8, 10] and len(output.parameters) == 0
        else:
            assert output["shape"] == [8, 10] and "data" not in output
            assert "parameters" not in output
        got = shm.get_contents_as_numpy(out_handle, np.float32, [8, 10], offset=64)
        assert_logits_close(got, fmnist_reference)
        # Input in the region, output in the response.
        result = client.infer(MODEL, [inp])
        assert_logits_close(result.as_numpy("logits"), fmnist_reference)
    finally:
        client.unregister_system_shared_memory()


def test_status_lists_what_is_registered(shm_server, regions):
    client = grpcclient.InferenceServerClient(shm_server.grpc_url)
    key, _ = regions.make("status", 8192)
    client.register_system_shared_memory("a", key, 4096, offset=4096)
    client.register_system_shared_memory("b", key, 100)
    try:
        status = client.get_system_shared_memory_status(as_json=True)["regions"]
        assert status["a"] == {"name": "a", "key": key, "offset": "4096", "byte_size": "4096"}
        assert set(status) == {"a", "b"}
        with pytest.raises(InferenceServerException, match="'a' is registered already"):
            client.register_system_shared_memory("a", key, 10)
        http = httpclient.InferenceServerClient(shm_server.http_url)
        assert [r["name"] for r in http.get_system_shared_memory_status()] == ["a", "b"]
        http.unregister_system_shared_memory("a")
        with pytest.raises(InferenceServerException, match="'a' is not registered"):
            client.get_system_shared_memory_status("a")
        assert http.get_system_shared_memory_status("b")[0]["byte_size"] == 100
        # No CUDA shared memory: nothing listed, registering says so.
        assert http.get_cuda_shared_memory_status() == []
        with pytest.raises(InferenceServerException, match="system shared memory only"):
            client.register_cuda_shared_memory("c", b"\0" * 64, 0, 16)
    finally:
        client.unregister_system_shared_memory()
    assert client.get_system_shared_memory_status(as_json=True).get("regions", {}) == {}


def test_registration_is_off_unless_allowed(server, shm_server, regions):
    key, _ = regions.make("off", 4096)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    with pytest.raises(InferenceServerException, match="--allow-client-shm") as err:
        client.register_system_shared_memory("r", key, 4096)
    assert "FAILED_PRECONDITION" in str(err.value.status())
    assert "system_shared_memory" not in client.get_server_metadata(as_json=True)["extensions"]
    allowed = grpcclient.InferenceServerClient(shm_server.grpc_url)
    assert "system_shared_memory" in allowed.get_server_metadata(as_json=True)["extensions"]


def shm_request(region, byte_size, offset=None, out=None, shape=(8, 1, 32, 32)):
    req = service_pb2.ModelInferRequest(model_name=MODEL, id="shm")
    t = req.inputs.add(name="input", datatype="FP32")
    t.shape.extend(shape)
    if region is not None:
        t.parameters["shared_memory_region"].string_param = region
    if byte_size is not None:
        t.parameters["shared_memory_byte_size"].int64_param = byte_size
    if offset is not None:
        t.parameters["shared_memory_offset"].int64_param = offset
    if out is not None:
        o = req.outputs.add(name="logits")
        o.parameters["shared_memory_region"].string_param = out[0]
        o.parameters["shared_memory_byte_size"].int64_param = out[1]
    return req


def test_misused_regions_get_a_code_and_a_message(shm_server, regions, fmnist_batch):
    n = fmnist_batch.nbytes
    key, _ = regions.make("bad", n + 4096, np.concatenate([fmnist_batch.ravel(),
                                                           np.zeros(1024, np.float32)]))
    client = grpcclient.InferenceServerClient(shm_server.grpc_url)
    for name, key_, size, text in [("x", "/parnet-no-such-object", 16, "cannot open"),
                                   ("x", key, n + 8192, "exceeds the"),
                                   ("x", key, 0, "byte_size >= 1")]:
        with pytest.raises(InferenceServerException, match=text):
            client.register_system_shared_memory(name, key_, size)
    client.register_system_shared_memory("r", key, n + 4096)
    try:
        cases = [
            (shm_request("nope", n), "region 'nope' is not registered"),
            (shm_request("r", n - 4), f"shared_memory_byte_size is {n - 4}, but FP32[8,1,32,32]"),
            (shm_request("r", n, offset=8192), "exceeds the"),
            (shm_request("r", None), "without shared_memory_byte_size"),
            (shm_request(None, n), "without shared_memory_region"),
            (shm_request("r", n, out=("r", 16)), "more than its shared_memory_byte_size 16"),
            (shm_request("r", n, out=("nope", 320)), "region 'nope' is not registered"),
        ]
        classified = shm_request("r", n, out=("r", 320))
        classified.outputs[0].parameters["classification"].int64_param = 3
        cases.append((classified, "classification into shared memory"))
        with_raw = shm_request("r", n)
        with_raw.raw_input_contents.append(fmnist_batch.tobytes())
        cases.append((with_raw, "raw_input_contents has 1 entries for 0 inputs"))
        for req, text in cases:
            with pytest.raises(grpc.RpcError) as err:
                stub(shm_server).ModelInfer(req)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
            assert text in err.value.details()
        # HTTP: data and shared memory for one input.
        body = ('{"inputs":[{"name":"input","datatype":"FP32","shape":[1,1,32,32],'
                '"data":[0],"parameters":{"shared_memory_region":"r",'
                f'"shared_memory_byte_size":4096}}}}]}}').encode()
        code, text = http_post(shm_server, f"/v2/models/{MODEL}/infer", body)
        assert code == 400 and b"send its data one way" in text
        code, text = http_post(shm_server, "/v2/systemsharedmemory/region/y/register", b"{}")
        assert code == 400 and b"needs \\\"key\\\"" in text
        # Still serving, from the region.
        resp = stub(shm_server).ModelInfer(shm_request("r", n))
        assert np.frombuffer(resp.raw_output_contents[0], np.float32).shape == (80,)
    finally:
        client.unregister_system_shared_memory()
    assert shm_server.alive()


def test_regions_stay_with_the_request_in_flight(shm_server, regions, fmnist_batch,
                                                 fmnist_reference):
    """fmnist-slowbatch waits up to 3 s to fill a batch of 4. Meanwhile the client unregisters
    both regions, unlinks the input's object and registers the output's name again for another
    object: the request still reads its input and writes its output where they were when it was
    sent."""
    in_key, _ = regions.make("flight-in", 4 * 1024, fmnist_batch[:1])
    out_key, out_handle = regions.make("flight-out", 40)
    other_key, other_handle = regions.make("flight-other", 40, np.zeros(10, np.float32))
    client = grpcclient.InferenceServerClient(shm_server.grpc_url)
    client.register_system_shared_memory("flight-in", in_key, 4 * 1024)
    client.register_system_shared_memory("flight-out", out_key, 40)
    inp = grpcclient.InferInput("input", [1, 1, 32, 32], "FP32")
    inp.set_shared_memory("flight-in", 4 * 1024)
    out = grpcclient.InferRequestedOutput("logits")
    out.set_shared_memory("flight-out", 40)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(client.infer, "fmnist-slowbatch", [inp], outputs=[out])
            time.sleep(0.5)
            client.unregister_system_shared_memory()
            os.unlink("/dev/shm/" + in_key.lstrip("/"))
            client.register_system_shared_memory("flight-out", other_key, 40)
            assert not future.done(), "the batch should still be waiting for its queue delay"
            future.result(timeout=30)
        got = shm.get_contents_as_numpy(out_handle, np.float32, [1, 10])
        assert_logits_close(got, fmnist_reference[:1])
        assert not shm.get_contents_as_numpy(other_handle, np.float32, [10]).any()
    finally:
        client.unregister_system_shared_memory()
        # The fixture destroys the region; recreate the object it expects to unlink.
        if not os.path.exists("/dev/shm/" + in_key.lstrip("/")):
            open("/dev/shm/" + in_key.lstrip("/"), "wb").close()


def test_a_shrunk_region_fails_the_request_not_the_server(shm_server, regions, fmnist_batch):
    """An owner that truncates its object under a registered region: the server's read would be
    a SIGBUS; the request fails naming the region and the server goes on."""
    n = fmnist_batch.nbytes
    key, _ = regions.make("shrunk", n, fmnist_batch)
    client = grpcclient.InferenceServerClient(shm_server.grpc_url)
    client.register_system_shared_memory("shrunk", key, n)
    try:
        os.truncate("/dev/shm/" + key.lstrip("/"), 0)
        with pytest.raises(grpc.RpcError) as err:
            stub(shm_server).ModelInfer(shm_request("shrunk", n))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        assert "region 'shrunk' was shrunk by its owner" in err.value.details()
    finally:
        client.unregister_system_shared_memory()
    assert shm_server.alive()
    # A fresh region of the same key works again.
    os.truncate("/dev/shm/" + key.lstrip("/"), n)
    client.register_system_shared_memory("again", key, n)
    try:
        resp = stub(shm_server).ModelInfer(shm_request("again", n))
        assert len(resp.raw_output_contents[0]) == LOGITS_BYTES
    finally:
        client.unregister_system_shared_memory()


def inference_counts(server, model):
    stats = stub(server).ModelStatistics(service_pb2.ModelStatisticsRequest(name=model))
    s = stats.model_stats[0].inference_stats
    return s.success.count, s.fail.count


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_an_output_region_shrunk_during_the_run_fails_and_counts_as_failed(
        shm_server, regions, fmnist_batch, protocol):
    """The output region passes its check when the request arrives; its owner truncates it while
    the request waits (fmnist-slowbatch holds a lone request up to 3 s for a batch to fill). The
    model runs, writing the answer fails naming the region, and the model's statistics count a
    failure, not a success (they used to count the run)."""
    model, n = "fmnist-slowbatch", 10 * 4
    key, _ = regions.make(f"late-{protocol}", n)
    module, client = client_for(shm_server, protocol)
    client.register_system_shared_memory(f"late-{protocol}", key, n)
    try:
        inp = module.InferInput("input", [1, 1, 32, 32], "FP32")
        inp.set_data_from_numpy(fmnist_batch[:1])
        out = module.InferRequestedOutput("logits")
        out.set_shared_memory(f"late-{protocol}", n)
        before = inference_counts(shm_server, model)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # A client of its own: tritonclient.http's (gevent) serves only the thread it was
            # made on.
            answer = pool.submit(lambda: client_for(shm_server, protocol)[1].infer(
                model, [inp], outputs=[out]))
            time.sleep(0.5)
            os.truncate("/dev/shm/" + key.lstrip("/"), 0)
            with pytest.raises(InferenceServerException) as err:
                answer.result(timeout=30)
        assert f"region 'late-{protocol}' was shrunk by its owner" in str(err.value)
        after = inference_counts(shm_server, model)
        assert (after[0] - before[0], after[1] - before[1]) == (0, 1), (before, after)
    finally:
        client.unregister_system_shared_memory(f"late-{protocol}")
    assert shm_server.alive()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_perf_analyzer_with_system_shared_memory(shm_server, tmp_path, protocol):
    run_perf_analyzer(shm_server, protocol, tmp_path, 2, "--shared-memory", "system",
                      "--output-shared-memory-size", str(LOGITS_BYTES))
    # perf_analyzer unregisters what it registered.
    status = grpcclient.InferenceServerClient(shm_server.grpc_url).get_system_shared_memory_status(
        as_json=True)
    assert status.get("regions", {}) == {}


def test_the_client_example_gets_the_same_labels_both_ways(shm_server):
    """scripts/serve_client.py, the README's complete example, with and without shared memory."""
    script = pathlib.Path(os.environ["PARNET_SOURCE"]) / "scripts/serve_client.py"
    python = pathlib.Path(os.environ["SERVE_VENV"]) / "bin/python"
    labels = {}
    for extra in ([], ["--shared-memory"], ["--http", "--shared-memory"]):
        url = shm_server.http_url if "--http" in extra else shm_server.grpc_url
        run = subprocess.run([str(python), str(script), "--url", url, "-n", "8", *extra],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        labels[" ".join(extra)] = run.stdout.splitlines()
    assert len(labels[""]) == 8 and labels[""][0].startswith("image 0: ")
    assert labels["--shared-memory"] == labels[""]
    assert labels["--http --shared-memory"] == labels[""]
