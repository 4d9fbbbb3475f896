#!/usr/bin/env python3
"""A Triton user's client for `parnet serve`: classifies Fashion-MNIST test images with the
shipped model over gRPC (or HTTP) using tritonclient, and prints the labels.

    build/runtime/cli/parnet serve --model-repository deploy/models &
    .venv-serve/bin/python scripts/serve_client.py [--url localhost:8001] [--http] [-n 8]

With --shared-memory the images and the logits travel through system shared memory regions
(Triton's shared-memory extension; the server must run with --allow-client-shm and on this
host) instead of the request and the response."""
import argparse
import gzip
import os
import pathlib

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = pathlib.Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def load_images(n):
    """The first n test images as the shipped model takes them: [n,1,32,32] FP32."""
    with gzip.open(DATA) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    x = np.pad(raw, ((0, 0), (2, 2), (2, 2))).astype(np.float32) / 255.0  # as in training
    return x[:, None]


def infer_in_shared_memory(client, lib, model, images, classes):
    """The images in one region, the logits in another: only names and offsets cross the socket."""
    out_bytes = images.shape[0] * classes * 4
    sizes = {"images": images.nbytes, "logits": out_bytes}
    keys = {name: f"/parnet-client-{os.getpid()}-{name}" for name in sizes}
    regions = [shm.create_shared_memory_region(name, keys[name], size)
               for name, size in sizes.items()]
    try:
        shm.set_shared_memory_region(regions[0], [images])
        for name, size in sizes.items():
            client.register_system_shared_memory(name, keys[name], size)
        inp = lib.InferInput("input", list(images.shape), "FP32")
        inp.set_shared_memory("images", images.nbytes)
        out = lib.InferRequestedOutput("logits")
        out.set_shared_memory("logits", out_bytes)
        client.infer(model, [inp], outputs=[out])
        # A copy: the array views the mapping, which the finally clause unmaps.
        return shm.get_contents_as_numpy(regions[1], np.float32,
                                         [images.shape[0], classes]).copy()
    finally:
        client.unregister_system_shared_memory("images")
        client.unregister_system_shared_memory("logits")
        for r in regions:
            shm.destroy_shared_memory_region(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=None)
    ap.add_argument("--http", action="store_true")
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--model", default="parnet-fmnist")
    ap.add_argument("--shared-memory", action="store_true",
                    help="send the images and take the logits through system shared memory")
    args = ap.parse_args()
    lib = httpclient if args.http else grpcclient
    client = lib.InferenceServerClient(args.url or ("localhost:8000" if args.http else "localhost:8001"))
    labels = (ROOT / "deploy/models/parnet-fmnist/labels.txt").read_text().splitlines()
    images = load_images(args.n)
    if args.shared_memory:
        logits = infer_in_shared_memory(client, lib, args.model, images, len(labels))
    else:
        inp = lib.InferInput("input", list(images.shape), "FP32")
        inp.set_data_from_numpy(images)
        logits = client.infer(args.model, [inp],
                              outputs=[lib.InferRequestedOutput("logits")]).as_numpy("logits")
    for i, row in enumerate(logits):
        print(f"image {i}: {labels[int(row.argmax())]}")


if __name__ == "__main__":
    main()
