#!/usr/bin/env python3
"""Two `parnet serve` binaries side by side on the protocol floor at concurrency 1: which one
answers a 224x224 FP32 request sooner, over gRPC and over HTTP, measured with perf_analyzer.

    nice -n -10 .venv-serve/bin/python scripts/bench_serve_ab.py \\
        --a /tmp/parnet-before --b build-serve/runtime/cli/parnet --rounds 4

For a change to the serving path: build the binary before the change and after it. Each round
starts a fresh server of each binary on the floor model (GlobalAveragePool of the input, as in
scripts/bench_serve.py) and measures it, alternating which binary goes first: on this machine
whichever server is measured first in a round can measure 0.15-0.65 ms slower, so a fixed order
shows a difference that is not there. Prints each round's p50, the medians, and B / A.
Run scripts/setup_serve_venv.sh first."""
import argparse
import pathlib
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench_serve  # noqa: E402  (the same models, server start and perf_analyzer call)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="the parnet binary to compare against")
    ap.add_argument("--b", required=True, help="the parnet binary being measured")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--requests", type=int, default=500, help="requests per measurement window")
    ap.add_argument("--protocols", default="grpc,http")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    # What bench_serve's helpers read from its own arguments.
    args.serve_args, args.server_prefix, args.client_prefix, args.engine_prefix = [], [], [], []
    args.stability_percent, args.max_trials = 15, 10
    protocols = args.protocols.split(",")

    p50 = {}  # (binary, protocol) -> p50 in ms per round
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        bench_serve.export_floor(tmp / "repo", bench_serve.CONFIG)
        for r in range(args.rounds):
            for which in ("a", "b") if r % 2 == 0 else ("b", "a"):
                args.parnet = getattr(args, which)
                server, grpc_url, http_url = bench_serve.start_server(args, tmp / "repo")
                try:
                    for proto in protocols:
                        url = grpc_url if proto == "grpc" else http_url
                        row = bench_serve.perf(args, "floor", url, 1, args.requests,
                                               tmp / "c1.csv", proto)
                        p50.setdefault((which, proto), []).append(row["p50 latency"] / 1000)
                finally:
                    bench_serve.stop(server)
    print(f"\nfloor model, c=1, fresh servers, {args.rounds} rounds, order alternating; "
          f"A = {args.a}, B = {args.b}")
    for proto in protocols:
        a, b = p50[("a", proto)], p50[("b", proto)]
        print(f"{proto}: A p50 {', '.join(f'{x:.3f}' for x in a)} ms, median "
              f"{statistics.median(a):.3f}; B p50 {', '.join(f'{x:.3f}' for x in b)} ms, median "
              f"{statistics.median(b):.3f}; B / A {statistics.median(b) / statistics.median(a):.2f}")


if __name__ == "__main__":
    main()
