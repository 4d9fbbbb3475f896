#!/usr/bin/env python3
"""A Triton user's client for `parnet serve`: classifies Fashion-MNIST test images with the
shipped model over gRPC (or HTTP) using tritonclient, and prints the labels.

    build/runtime/cli/parnet serve --model-repository deploy/models &
    .venv-serve/bin/python scripts/serve_client.py [--url localhost:8001] [--http] [-n 8]"""
import argparse
import gzip
import pathlib

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = pathlib.Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def load_images(n):
    """The first n test images as the shipped model takes them: [n,1,32,32] FP32."""
    with gzip.open(DATA) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    x = np.pad(raw, ((0, 0), (2, 2), (2, 2))).astype(np.float32) / 255.0  # as in training
    return x[:, None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=None)
    ap.add_argument("--http", action="store_true")
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--model", default="parnet-fmnist")
    args = ap.parse_args()
    lib = httpclient if args.http else grpcclient
    client = lib.InferenceServerClient(args.url or ("localhost:8000" if args.http else "localhost:8001"))
    labels = (ROOT / "deploy/models/parnet-fmnist/labels.txt").read_text().split("\n")
    images = load_images(args.n)
    inp = lib.InferInput("input", list(images.shape), "FP32")
    inp.set_data_from_numpy(images)
    logits = client.infer(args.model, [inp], outputs=[lib.InferRequestedOutput("logits")]).as_numpy("logits")
    for i, row in enumerate(logits):
        print(f"image {i}: {labels[int(row.argmax())]}")


if __name__ == "__main__":
    main()
