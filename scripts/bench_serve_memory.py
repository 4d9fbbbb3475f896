#!/usr/bin/env python3
"""What keeping freed memory (parnet serve's default) does against glibc malloc's defaults
(`parnet serve --release-freed-memory`): perf_analyzer p50 at c=1, batch 1, a 224x224 FP32 input
sent raw over gRPC, on bench_serve.py's floor and overhead models, side by side in one run.

    nice -n -10 .venv-serve/bin/python scripts/bench_serve_memory.py --parnet build-serve/runtime/cli/parnet

Two layouts, each for --rounds rounds, the two variants taking turns going first:
  new servers:       a server started for each measurement (its first few thousand requests);
  long-lived servers: both servers started once and measured in turn.
Prints each variant's median p50 and the per-round differences (released minus kept)."""
import argparse
import pathlib
import statistics
import tempfile

import bench_serve as bs


def measure(args, server_url, model, tmp):
    return bs.perf(args, model, server_url, 1, args.requests, tmp / "c1.csv")["p50 latency"] / 1000


def report(label, results):
    for model in ("floor", "overhead"):
        kept, released = results[(model, "kept")], results[(model, "released")]
        diff = [b - a for a, b in zip(kept, released)]
        print(f"{label}, {model} model: p50 kept {statistics.median(kept):.3f} ms, released "
              f"{statistics.median(released):.3f} ms; released minus kept per round "
              f"{', '.join(f'{d:+.3f}' for d in diff)}, median {statistics.median(diff):+.3f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parnet", default=str(bs.ROOT / "build/runtime/cli/parnet"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=500, help="requests per window")
    ap.add_argument("--variant", default="cifar")
    args = ap.parse_args()
    args.threads, args.stability_percent, args.max_trials = 1, 15, 10
    args.client_prefix, args.server_prefix, args.serve_args = [], [], []
    variants = {"kept": [], "released": ["--release-freed-memory"]}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        repo = tmp / "repo"
        bs.export("overhead", "8,16,32,64", repo, args.variant, bs.CONFIG)
        bs.export_floor(repo, bs.CONFIG)
        fresh, lived = {}, {}
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for model in ("floor", "overhead"):
                for v in order:
                    server, url, _ = bs.start_server(args, repo, variants[v])
                    try:
                        fresh.setdefault((model, v), []).append(measure(args, url, model, tmp))
                    finally:
                        bs.stop(server)
        servers = {v: bs.start_server(args, repo, extra) for v, extra in variants.items()}
        try:
            for r in range(args.rounds):
                order = list(variants) if r % 2 == 0 else list(reversed(variants))
                for model in ("floor", "overhead"):
                    for v in order:
                        lived.setdefault((model, v), []).append(
                            measure(args, servers[v][1], model, tmp))
        finally:
            for server, _, _ in servers.values():
                bs.stop(server)
    print(f"\nc=1 p50, {args.rounds} rounds, medians:")
    report("new servers", fresh)
    report("long-lived servers", lived)


if __name__ == "__main__":
    main()
