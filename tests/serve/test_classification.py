"""Triton's classification extension with Triton's own clients: an output requested with a
class count comes back as the top classes of each row, "value:index:label" strings (labels from
the config's label_filename), over gRPC (raw and typed) and HTTP (binary and JSON)."""
import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from conftest import FMNIST
from test_serve import MODEL, stub

LABELS = (FMNIST / "labels.txt").read_text().splitlines()


def check_classes(got, reference, k):
    """`got` [rows, k] of b"value:index:label": best first, the values the model gave those
    classes, and the top k of the reference (up to near-ties within the parity tolerance)."""
    tol = 1e-4 * max(1.0, float(np.abs(reference).max()))
    assert got.shape == (reference.shape[0], k)
    for row, want in zip(got, reference):
        fields = [(v.decode() if isinstance(v, bytes) else v).split(":", 2) for v in row]
        values = np.array([float(f[0]) for f in fields])
        index = [int(f[1]) for f in fields]
        assert [f[2] for f in fields] == [LABELS[i] for i in index]
        assert (np.diff(values) <= 0).all(), "classes must come best first"
        np.testing.assert_allclose(values, want[index], rtol=0, atol=tol)
        kth = np.sort(want)[::-1][k - 1]
        assert (want[index] >= kth - tol).all()
        assert len(set(index)) == k


@pytest.mark.parametrize("protocol,binary", [("grpc", True), ("http", True), ("http", False)])
def test_top_classes_match_parnet_run(server, fmnist_batch, fmnist_reference, protocol, binary):
    lib = grpcclient if protocol == "grpc" else httpclient
    client = lib.InferenceServerClient(server.grpc_url if protocol == "grpc" else server.http_url)
    inp = lib.InferInput("input", list(fmnist_batch.shape), "FP32")
    inp.set_data_from_numpy(fmnist_batch)
    if protocol == "grpc":
        out = lib.InferRequestedOutput("logits", class_count=3)
    else:
        out = lib.InferRequestedOutput("logits", binary_data=binary, class_count=3)
    result = client.infer(MODEL, [inp], outputs=[out])
    check_classes(result.as_numpy("logits"), fmnist_reference, 3)
    # More classes than the model has: all of them, ranked.
    out = lib.InferRequestedOutput("logits", class_count=25)
    result = client.infer(MODEL, [inp], outputs=[out])
    check_classes(result.as_numpy("logits"), fmnist_reference, 10)


def test_the_server_lists_the_extension(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    assert "classification" in client.get_server_metadata(as_json=True)["extensions"]


def test_typed_grpc_request_gets_bytes_contents(server, fmnist_batch, fmnist_reference):
    req = service_pb2.ModelInferRequest(model_name=MODEL)
    t = req.inputs.add(name="input", datatype="FP32")
    t.shape.extend(fmnist_batch[:2].shape)
    t.contents.fp32_contents.extend(fmnist_batch[:2].flatten().tolist())
    o = req.outputs.add(name="logits")
    o.parameters["classification"].int64_param = 2
    resp = stub(server).ModelInfer(req)
    assert resp.outputs[0].datatype == "BYTES" and list(resp.outputs[0].shape) == [2, 2]
    assert len(resp.raw_output_contents) == 0
    got = np.array(resp.outputs[0].contents.bytes_contents, dtype=object).reshape(2, 2)
    check_classes(got, fmnist_reference[:2], 2)


def test_a_class_count_below_one_is_refused(server, fmnist_batch):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    inp = grpcclient.InferInput("input", [1, 1, 32, 32], "FP32")
    inp.set_data_from_numpy(fmnist_batch[:1])
    out = grpcclient.InferRequestedOutput("logits")
    out._output.parameters["classification"].int64_param = 0
    with pytest.raises(InferenceServerException, match="classification is 0") as err:
        client.infer(MODEL, [inp], outputs=[out])
    assert "INVALID_ARGUMENT" in str(err.value.status())
    http = httpclient.InferenceServerClient(server.http_url)
    hinp = httpclient.InferInput("input", [1, 1, 32, 32], "FP32")
    hinp.set_data_from_numpy(fmnist_batch[:1])
    hout = httpclient.InferRequestedOutput("logits", class_count=-2)
    with pytest.raises(InferenceServerException, match="classification is -2"):
        http.infer(MODEL, [hinp], outputs=[hout])
    assert server.alive()
