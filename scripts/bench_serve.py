#!/usr/bin/env python3
"""Serving overhead and dynamic-batching throughput of `parnet serve`, measured with Triton's
perf_analyzer against the engine's own numbers (`parnet bench`) on the same model, side by side.

    .venv-serve/bin/python scripts/bench_serve.py [--parnet build/runtime/cli/parnet]

Targets (issue 8): at concurrency 1, batch 1, a 224x224 FP32 input sent raw over gRPC, the p50
is within 0.6 ms of a direct engine call; at concurrency 16 with dynamic batching, throughput is
at least 90% of the engine's batch-8 throughput. Run scripts/setup_serve_venv.sh first."""
import argparse
import csv
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import threading

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-serve"

CONFIG = """
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]
dynamic_batching { max_queue_delay_microseconds: 0 }
"""


def sh(cmd, **kw):
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.run(cmd, check=True, text=True, **kw)


def perf(model, url, concurrency, out_csv, seconds_window):
    sh([VENV / "bin/perf_analyzer", "-m", model, "-u", url, "-i", "grpc", "-b", "1",
        "--concurrency-range", str(concurrency), "--measurement-mode", "time_windows",
        "--measurement-interval", str(seconds_window), "--max-trials", "10",
        "--stability-percentage", "25", "-f", out_csv], stdout=subprocess.DEVNULL)
    row = next(csv.DictReader(open(out_csv)))
    return {k: float(row[k]) for k in ("Inferences/Second", "p50 latency", "p90 latency",
                                        "p99 latency")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parnet", default=str(ROOT / "build/runtime/cli/parnet"))
    ap.add_argument("--variant", default="cifar", help="ParNet variant exported at 224x224")
    ap.add_argument("--widths", default=None,
                    help="C1,C2,C3,Cf of the export (a smaller model resolves the overhead "
                         "better: its run time varies less)")
    ap.add_argument("--seconds", type=float, default=10, help="parnet bench seconds per case")
    ap.add_argument("--window-ms", type=int, default=8000, help="perf_analyzer window")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        model_dir = tmp / "repo/parnet-bench"
        (model_dir / "1").mkdir(parents=True)
        onnx = model_dir / "1/model.onnx"
        sh(["/usr/bin/python3", ROOT / "scripts/parnet_reference.py", "export", "--variant",
            args.variant, "--fused", "--size", "224", "--out", onnx]
           + (["--widths", args.widths] if args.widths else []), stdout=subprocess.DEVNULL)
        (model_dir / "config.pbtxt").write_text(CONFIG)

        sh([args.parnet, "bench", "--model", onnx, "--batch", "1,8", "--size", "224",
            "--seconds", str(args.seconds), "--json", tmp / "engine.json"],
           stdout=subprocess.DEVNULL)
        engine = {c["batch"]: c for c in json.load(open(tmp / "engine.json"))["cases"]}

        server = subprocess.Popen([args.parnet, "serve", "--model-repository", tmp / "repo",
                                   "--host", "127.0.0.1", "--grpc-port", "0", "--http-port", "0",
                                   "--metrics-port", "0"], stdout=subprocess.PIPE, text=True)
        port = None
        for line in server.stdout:
            m = re.search(r"ready: grpc (\d+)", line)
            if m:
                port = m.group(1)
                break
        if port is None:
            sys.exit("parnet serve did not start")
        threading.Thread(target=server.stdout.read, daemon=True).start()
        try:
            url = f"127.0.0.1:{port}"
            c1 = perf("parnet-bench", url, 1, tmp / "c1.csv", args.window_ms)
            c16 = perf("parnet-bench", url, 16, tmp / "c16.csv", args.window_ms)
        finally:
            server.terminate()
            server.wait()

    e1, e8 = engine[1], engine[8]
    overhead_ms = c1["p50 latency"] / 1000 - e1["p50_ms"]
    ratio = c16["Inferences/Second"] / e8["images_per_s"]
    print(f"\nmodel: ParNet {args.variant} variant (widths {args.widths or 'default'}), fused, 1x3x224x224 FP32 (random weights)")
    print(f"engine (parnet bench)  batch 1: p50 {e1['p50_ms']:.3f} ms; batch 8: "
          f"{e8['images_per_s']:.1f} images/s (p50 {e8['p50_ms']:.2f} ms)")
    print(f"served, gRPC raw, c=1: p50 {c1['p50 latency'] / 1000:.3f} ms, p90 "
          f"{c1['p90 latency'] / 1000:.3f} ms, p99 {c1['p99 latency'] / 1000:.3f} ms, "
          f"{c1['Inferences/Second']:.1f} infer/s")
    print(f"served, gRPC raw, c=16 (dynamic batching, max 8): {c16['Inferences/Second']:.1f} "
          f"infer/s, p50 {c16['p50 latency'] / 1000:.2f} ms, p90 {c16['p90 latency'] / 1000:.2f} "
          f"ms, p99 {c16['p99 latency'] / 1000:.2f} ms")
    print(f"serving overhead at c=1 (p50): {overhead_ms:+.3f} ms (target <= 0.6 ms): "
          f"{'PASS' if overhead_ms <= 0.6 else 'FAIL'}")
    print(f"throughput at c=16 / engine batch 8: {ratio:.3f} (target >= 0.90): "
          f"{'PASS' if ratio >= 0.9 else 'FAIL'}")


if __name__ == "__main__":
    main()
