#!/usr/bin/env python3
"""Serving overhead and dynamic-batching throughput of `parnet serve`, measured with Triton's
perf_analyzer against the engine's own numbers (`parnet bench`) on the same models, in one run.

    nice -n -10 .venv-serve/bin/python scripts/bench_serve.py --parnet build-serve/runtime/cli/parnet

Targets (issue 8): at concurrency 1, batch 1, a 224x224 FP32 input sent raw over gRPC, the p50
is within 0.6 ms of a direct engine call; at concurrency 16 with dynamic batching, throughput is
at least 90% of the engine's batch-8 throughput. Method and results: docs/serving.md, "Measured".

A "floor" model that only averages the same input is measured the same way at c=1: its overhead
is the protocol's own cost on this machine, under which the overhead model's figure cannot go.

Each repeat runs, back to back, against one `parnet serve` that holds all the models: the engine
(`parnet bench`), perf_analyzer over gRPC (raw input), then the engine again, for batch 1 of the
overhead and floor models at concurrency 1 and for batch 8 of each throughput model against
concurrency 16. The engine figure a served one is compared with is the mean of the runs just
before and just after it, so that the machine's drift between them cancels to first order.
Server and engine use the same OpenMP thread count (--threads, default 1: on a 2-core machine
the other core goes to perf_analyzer and gRPC). The summary gives medians over the repeats.

Also per repeat: the engine on the overhead model idling after each run as long as the served
instance idled between requests (`parnet bench --idle-us`; what a machine does to a core that
idles is not the server's doing), the overhead model at c=1 with its input and output in system
shared memory (perf_analyzer --shared-memory system; the server runs with --allow-client-shm),
the floor model over HTTP, and with --triton the same floor
computation served by NVIDIA's Triton (scripts/setup_triton_peer.sh) over gRPC and HTTP: the
peer, side by side, with the same client.

perf_analyzer exits with status 2 when its measurement windows do not stabilize (its
STABILITY_ERROR; request errors are status 99). Windows here are counted in requests
(count_windows) and stability is judged on the p50 and the throughput (--percentile 50) within
--stability-percent over the last 3 windows, for up to --max-trials windows. A case that still
does not stabilize is measured once more over a fixed --request-count (no stability check) and
flagged "unstable" in the results instead of aborting the run. Run scripts/setup_serve_venv.sh
first."""
import argparse
import csv
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-serve"

CONFIG = """
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]
dynamic_batching { max_queue_delay_microseconds: 0 }
"""
# With --pin: parnet's instances on the server cores (`parnet serve --host-policy pin,...`).
PINNED_GROUP = 'instance_group [ { count: 1 kind: KIND_CPU host_policy: "pin" } ]\n'

# perf_analyzer's CSV: averages in microseconds, per request.
BREAKDOWN = ("Client Send", "Network+Server Send/Recv", "Server Queue", "Server Compute Input",
             "Server Compute Infer", "Server Compute Output", "Client Recv")


def sh(cmd, check=True, **kw):
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.run(list(map(str, cmd)), check=check, text=True, **kw)


def load():
    return pathlib.Path("/proc/loadavg").read_text().split()[:3]


def export(name, widths, repo, variant, config):
    model_dir = repo / name
    (model_dir / "1").mkdir(parents=True)
    sh(["/usr/bin/python3", ROOT / "scripts/parnet_reference.py", "export", "--variant", variant,
        "--fused", "--size", "224", "--out", model_dir / "1/model.onnx"]
       + (["--widths", widths] if widths else []), stdout=subprocess.DEVNULL)
    (model_dir / "config.pbtxt").write_text(config)
    return model_dir / "1/model.onnx"


def export_floor(repo, config):
    """A model that only averages its 3x224x224 input (GlobalAveragePool): served at c=1, what is
    left of its latency besides the engine's is the protocol's own cost (client, gRPC over
    loopback, the server's handling), the floor under the overhead model's figure."""
    import onnx
    from onnx import TensorProto, helper
    model_dir = repo / "floor"
    (model_dir / "1").mkdir(parents=True)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 1, 1])
    graph = helper.make_graph([helper.make_node("GlobalAveragePool", ["input"], ["output"])],
                              "floor", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              model_dir / "1/model.onnx")
    (model_dir / "config.pbtxt").write_text(config)
    return model_dir / "1/model.onnx"


def engine(args, onnx, batch, out_json, idle_us=0):
    parnet, threads, seconds = args.parnet, args.threads, args.seconds
    sh([*args.engine_prefix, parnet, "bench", "--model", onnx, "--batch", batch, "--size", "224",
        "--threads", threads, "--seconds", seconds, "--idle-us", idle_us, "--json", out_json],
       stdout=subprocess.DEVNULL)
    # images/s as a count over time (the runs are back to back), as perf_analyzer counts its
    # infer/s; `parnet bench` prints batch / p50, which ignores the slow runs.
    return {str(c["batch"]): {"p50_ms": c["p50_ms"],
                              "images_per_s": c["batch"] * 1000 / statistics.mean(
                                  c["latencies_ms"])}
            for c in json.load(open(out_json))["cases"]}


def bracket(before, after):
    """An engine figure measured just before and just after the served one it is compared with:
    the mean of the two, so that a drift of the machine between them cancels to first order."""
    return {"p50_ms": (before["p50_ms"] + after["p50_ms"]) / 2,
            "images_per_s": (before["images_per_s"] + after["images_per_s"]) / 2,
            "before": before, "after": after}


def perf(args, model, url, concurrency, requests, out_csv, protocol="grpc", extra=()):
    base = [*args.client_prefix, VENV / "bin/perf_analyzer", "-m", model, "-u", url, "-i", protocol,
            "-b", "1", "--concurrency-range", concurrency, "--percentile", "50", "-f", out_csv,
            *extra]
    stable = [*base, "--measurement-mode", "count_windows", "--measurement-request-count",
              requests, "--stability-percentage", args.stability_percent, "--max-trials",
              args.max_trials]
    run = sh(stable, check=False, capture_output=True)
    status = "stable"
    if run.returncode == 2:  # STABILITY_ERROR: the windows kept moving
        print(run.stdout[-400:], flush=True)
        status = "unstable"
        run = sh([*base, "--request-count", 3 * requests], check=False, capture_output=True)
    if run.returncode != 0:
        sys.exit(f"perf_analyzer failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    row = next(csv.DictReader(open(out_csv)))
    out = {k: float(row[k]) for k in ("Inferences/Second", "p50 latency", "p90 latency",
                                       "p99 latency", *BREAKDOWN)}
    out["status"] = status
    return out


def start_server(args, repo):
    server = subprocess.Popen(
        [*args.server_prefix, args.parnet, "serve", "--model-repository", repo, "--host",
         "127.0.0.1", "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0", "--threads",
         str(args.threads), "--allow-client-shm", *args.serve_args],
        stdout=subprocess.PIPE, text=True)
    for line in server.stdout:
        m = re.search(r"ready: grpc (\d+) http (\d+)", line)
        if m:
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server, f"127.0.0.1:{m.group(1)}", f"127.0.0.1:{m.group(2)}"
    sys.exit("parnet serve did not start")


TRITON_FLOOR = """import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "input").as_numpy()
            y = x.mean(axis=(2, 3), keepdims=True, dtype="float32")
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("output", y)]))
        return responses
"""


def export_triton_floor(repo):
    """The floor model for Triton: the same average of the same input, in Triton's Python backend
    (the only backend its PyPI build carries), with the same batching configuration."""
    model_dir = repo / "floor"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1/model.py").write_text(TRITON_FLOOR)
    (model_dir / "config.pbtxt").write_text('backend: "python"\n' + CONFIG + """
output [ { name: "output" data_type: TYPE_FP32 dims: [ 3, 1, 1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
""")


def free_ports(n):
    """n distinct free ports (all held until all are chosen)."""
    import socket
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start_triton(args, repo, log):
    """tritonserver from scripts/setup_triton_peer.sh on `repo`, its output in `log`; returns the
    process at once (so that the caller's cleanup covers it)."""
    peer = pathlib.Path(args.triton).resolve()
    grpc_port, http_port, metrics_port = free_ports(3)
    env = dict(os.environ, LD_LIBRARY_PATH=str(peer / "lib"))
    process = subprocess.Popen(
        list(map(str, [*args.engine_prefix, peer / "bin/tritonserver", "--model-repository", repo,
                       "--backend-directory", peer / "backends", "--grpc-address", "127.0.0.1",
                       "--http-address", "127.0.0.1", "--grpc-port", grpc_port, "--http-port",
                       http_port, "--metrics-port", metrics_port, "--allow-metrics", "false"])),
        env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}"


def wait_triton(process, http_url, log_path):
    """Waits for Triton to be ready; returns its version."""
    import urllib.request
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{http_url}/v2/health/ready") as r:
                if r.status == 200:
                    with urllib.request.urlopen(f"http://{http_url}/v2") as m:
                        return json.load(m)["version"]
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"tritonserver did not become ready; its output:\n"
             f"{pathlib.Path(log_path).read_text()[-2000:]}")


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def protocol_us(row):
    """perf_analyzer's averages of what the protocol costs a request outside the model: client
    send and receive, network + server send/receive, queue (compute is the backend's)."""
    return sum(row[k] for k in ("Client Send", "Network+Server Send/Recv", "Server Queue",
                                "Client Recv"))


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def report_c1(reps, prefix, title, what):
    """Prints one model's c=1 figures (engine batch 1 against served) and returns the served p50
    minus the engine's p50 per repeat, in ms."""
    engine_b1 = [r[f"{prefix}engine_b1"] for r in reps]
    c1 = [r[f"{prefix}c1"] for r in reps]
    print(f"{title}:")
    print(f"  engine batch 1 p50 {med(engine_b1, 'p50_ms'):.3f} ms; served c=1 p50 "
          f"{med(c1, 'p50 latency') / 1000:.3f} ms, p90 {med(c1, 'p90 latency') / 1000:.3f} ms, "
          f"p99 {med(c1, 'p99 latency') / 1000:.3f} ms")
    print("  server breakdown (avg us): " + ", ".join(f"{k} {med(c1, k):.0f}" for k in BREAKDOWN))
    diffs = [c["p50 latency"] / 1000 - e["p50_ms"] for c, e in zip(c1, engine_b1)]
    print(f"  {what} p50 per repeat: {', '.join(f'{d:+.3f}' for d in diffs)} ms")
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parnet", default=str(ROOT / "build/runtime/cli/parnet"))
    ap.add_argument("--variant", default="cifar", help="ParNet variant exported at 224x224")
    ap.add_argument("--overhead-widths", default="8,16,32,64",
                    help="C1,C2,C3,Cf of the overhead model: small compute, so that the engine's "
                         "own variation stays well under the 0.6 ms being measured")
    ap.add_argument("--throughput-widths", default="16,32,64,128;32,64,128,256",
                    help="';'-separated widths of the throughput models ('default': the "
                         "variant's own)")
    ap.add_argument("--threads", type=int, default=1,
                    help="OpenMP threads of the engine and of the served model's instance")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4, help="parnet bench seconds per case")
    ap.add_argument("--c1-requests", type=int, default=500, help="requests per window, c=1")
    ap.add_argument("--c16-requests", default="800;300",
                    help="requests per window at c=16, ';'-separated, one per throughput model")
    ap.add_argument("--stability-percent", type=int, default=15)
    ap.add_argument("--max-trials", type=int, default=10)
    ap.add_argument("--pin", nargs="?", const="instance", choices=("instance", "server"),
                    help="give the served model and the engine runs the last --threads cores and "
                         "perf_analyzer the others, so that client and model never share a core. "
                         "'instance' (the default of a bare --pin): parnet's --host-policy binds "
                         "the served instances and the server keeps its gRPC and HTTP threads on "
                         "the client's cores; 'server': the whole server (taskset) is on those "
                         "cores, front ends included, as when the clients are on other machines")
    ap.add_argument("--triton", metavar="DIR",
                    help="also measure Triton Inference Server (from scripts/"
                         "setup_triton_peer.sh, e.g. .triton-peer) on the floor model at c=1 over "
                         "gRPC and HTTP, beside parnet, with the same perf_analyzer")
    ap.add_argument("--json", help="write every repeat's numbers here")
    args = ap.parse_args()
    args.engine_prefix, args.client_prefix, args.serve_args = [], [], []
    args.server_prefix = []
    if args.pin:
        cores = sorted(os.sched_getaffinity(0))
        if args.threads >= len(cores):
            sys.exit(f"--pin needs more cores than --threads ({len(cores)} available)")
        server = ",".join(map(str, cores[-args.threads:]))
        client = ",".join(map(str, cores[:-args.threads]))
        if args.pin == "instance":
            # The served instances are bound by parnet's own host policy (the server keeps its
            # gRPC and HTTP threads off those cores); `parnet bench` and Triton by taskset.
            args.serve_args = ["--host-policy", f"pin,cpu-cores={server}"]
        else:
            args.server_prefix = ["taskset", "-c", server]
        args.engine_prefix = ["taskset", "-c", server]
        args.client_prefix = ["taskset", "-c", client]
    config = CONFIG + (PINNED_GROUP if args.pin == "instance" else "")

    result = {"start_utc": time.strftime("%H:%M:%S", time.gmtime()), "load_before": load(),
              "nice": os.nice(0), "threads": args.threads, "pin": args.pin, "repeats": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        repo = tmp / "repo"
        onnx = {"overhead": export("overhead", args.overhead_widths, repo, args.variant, config),
                "floor": export_floor(repo, config)}
        tput = []
        counts = [int(c) for c in args.c16_requests.split(";")]
        for i, widths in enumerate(args.throughput_widths.split(";")):
            name = f"throughput{i}"
            onnx[name] = export(name, None if widths == "default" else widths, repo, args.variant,
                                config)
            tput.append((name, widths, counts[min(i, len(counts) - 1)]))
        server, url, http_url = start_server(args, repo)
        triton = None
        try:
            if args.triton:
                triton_repo = tmp / "triton-repo"
                export_triton_floor(triton_repo)
                triton_log = open(tmp / "triton.log", "w")
                triton = start_triton(args, triton_repo, triton_log)
                result["triton_version"] = wait_triton(triton[0], triton[2], tmp / "triton.log")
            for r in range(args.repeats):
                rep = {"load": load()}
                before = engine(args, onnx["overhead"], 1, tmp / "e.json")["1"]
                rep["c1"] = perf(args, "overhead", url, 1, args.c1_requests, tmp / "c1.csv")
                rep["engine_b1"] = bracket(before, engine(args, onnx["overhead"], 1,
                                                          tmp / "e.json")["1"])
                # The engine again, idling after each run as long as the served instance idled
                # between its runs (the mean time per request minus the mean compute).
                c1 = rep["c1"]
                rep["idle_us"] = max(0, round(1e6 / c1["Inferences/Second"] - sum(
                    c1[k] for k in ("Server Compute Input", "Server Compute Infer",
                                    "Server Compute Output"))))
                rep["engine_b1_idle"] = engine(args, onnx["overhead"], 1, tmp / "e.json",
                                               rep["idle_us"])["1"]
                # The same request with the input and output in system shared memory (Triton's
                # extension; perf_analyzer --shared-memory system): no tensor bytes on the socket.
                rep["c1_shm"] = perf(args, "overhead", url, 1, args.c1_requests, tmp / "c1.csv",
                                     extra=["--shared-memory", "system"])
                before = engine(args, onnx["floor"], 1, tmp / "e.json")["1"]
                rep["floor_c1"] = perf(args, "floor", url, 1, args.c1_requests, tmp / "c1.csv")
                rep["floor_engine_b1"] = bracket(before, engine(args, onnx["floor"], 1,
                                                                tmp / "e.json")["1"])
                rep["floor_http_c1"] = perf(args, "floor", http_url, 1, args.c1_requests,
                                            tmp / "c1.csv", "http")
                if triton:
                    rep["triton_floor_c1"] = perf(args, "floor", triton[1], 1, args.c1_requests,
                                                  tmp / "c1.csv")
                    rep["triton_floor_http_c1"] = perf(args, "floor", triton[2], 1,
                                                       args.c1_requests, tmp / "c1.csv", "http")
                for name, _, count in tput:
                    e = engine(args, onnx[name], "1,8", tmp / "e.json")
                    rep[f"{name}_c16"] = perf(args, name, url, 16, count,
                                              tmp / "c16.csv")
                    rep[f"{name}_engine_b1"] = e["1"]
                    rep[f"{name}_engine_b8"] = bracket(
                        e["8"], engine(args, onnx[name], 8, tmp / "e.json")["8"])
                result["repeats"].append(rep)
                print(json.dumps(rep), flush=True)
        finally:
            for process in [server] + ([triton[0]] if triton else []):
                stop(process)
    result["end_utc"] = time.strftime("%H:%M:%S", time.gmtime())
    result["load_after"] = load()
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))

    reps = result["repeats"]
    print(f"\n{args.variant} variant at 224x224 FP32, fused, random weights; threads "
          f"{args.threads} (engine and served instance){f'; pinned ({args.pin})' if args.pin else ''}; "
          f"{len(reps)} repeats, medians; load "
          f"{' '.join(result['load_before'])} before, {' '.join(result['load_after'])} after")
    overheads = report_c1(reps, "", f"overhead model (widths {args.overhead_widths})",
                          "overhead")
    print(f"  median {statistics.median(overheads):+.3f} ms (target <= 0.6): "
          f"{'PASS' if statistics.median(overheads) <= 0.6 else 'FAIL'}")
    idle = [r["engine_b1_idle"]["p50_ms"] for r in reps]
    own = [r["c1"]["p50 latency"] / 1000 - r["engine_b1_idle"]["p50_ms"] for r in reps]
    print(f"  engine batch 1 idling after each run as the served instance did (median "
          f"{statistics.median(r['idle_us'] for r in reps):.0f} us): p50 "
          f"{statistics.median(idle):.3f} ms; served minus it {statistics.median(own):+.3f} ms "
          f"(per repeat {', '.join(f'{d:+.3f}' for d in own)})")
    shm = [r["c1_shm"] for r in reps]
    shm_over = [r["c1_shm"]["p50 latency"] / 1000 - r["engine_b1"]["p50_ms"] for r in reps]
    print(f"  input and output in system shared memory (perf_analyzer --shared-memory system): "
          f"p50 {med(shm, 'p50 latency') / 1000:.3f} ms, overhead median "
          f"{statistics.median(shm_over):+.3f} ms (per repeat "
          f"{', '.join(f'{d:+.3f}' for d in shm_over)})")
    floors = report_c1(reps, "floor_", "floor model (GlobalAveragePool of the same input)",
                       "protocol floor")
    print(f"  median {statistics.median(floors):+.3f} ms")
    http = [r["floor_http_c1"] for r in reps]
    print(f"  over HTTP (binary tensors): p50 {med(http, 'p50 latency') / 1000:.3f} ms")
    if "triton_version" in result:
        print(f"peer: Triton {result['triton_version']} (nvidia-pytriton wheel), the floor's average "
              f"computed by numpy in its Python backend, same perf_analyzer, c=1; protocol = "
              f"client send + network and server send/receive + queue + client receive "
              f"(perf_analyzer's averages: the request time minus what each server reports as "
              f"compute, so Triton's Python-backend IPC counts as its compute)")
        for proto, ours, theirs in (("gRPC", "floor_c1", "triton_floor_c1"),
                                    ("HTTP", "floor_http_c1", "triton_floor_http_c1")):
            a = [r[ours] for r in reps]
            b = [r[theirs] for r in reps]
            ratio = [protocol_us(x) / protocol_us(y) for x, y in zip(a, b)]
            print(f"  {proto}: p50 parnet {med(a, 'p50 latency') / 1000:.3f} ms, Triton "
                  f"{med(b, 'p50 latency') / 1000:.3f} ms; protocol parnet "
                  f"{statistics.median(map(protocol_us, a)):.0f} us, Triton "
                  f"{statistics.median(map(protocol_us, b)):.0f} us; parnet / Triton per repeat "
                  f"{', '.join(f'{x:.2f}' for x in ratio)}, median "
                  f"{statistics.median(ratio):.2f}")
    for name, widths, _ in tput:
        c16 = [r[f"{name}_c16"] for r in reps]
        e8 = [r[f"{name}_engine_b8"] for r in reps]
        e1 = [r[f"{name}_engine_b1"] for r in reps]
        ratios = [c["Inferences/Second"] / e["images_per_s"] for c, e in zip(c16, e8)]
        print(f"throughput model (widths {widths}):")
        print(f"  engine batch 1 {med(e1, 'images_per_s'):.1f} images/s (p50 "
              f"{med(e1, 'p50_ms'):.2f} ms)")
        print(f"  engine batch 8 {med(e8, 'images_per_s'):.1f} images/s (runs over time; p50 "
              f"{med(e8, 'p50_ms'):.2f} ms); served c=16 {med(c16, 'Inferences/Second'):.1f} "
              f"infer/s, p50 {med(c16, 'p50 latency') / 1000:.2f} ms, p90 "
              f"{med(c16, 'p90 latency') / 1000:.2f} ms, p99 {med(c16, 'p99 latency') / 1000:.2f}"
              f" ms; status {[c['status'] for c in c16]}")
        print("  server breakdown (avg us): " + ", ".join(
            f"{k} {med(c16, k):.0f}" for k in BREAKDOWN))
        print(f"  ratio per repeat: {', '.join(f'{x:.3f}' for x in ratios)}; median "
              f"{statistics.median(ratios):.3f} (target >= 0.90): "
              f"{'PASS' if statistics.median(ratios) >= 0.9 else 'FAIL'}")


if __name__ == "__main__":
    main()
