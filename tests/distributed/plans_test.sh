#!/usr/bin/env bash
# Plans across devices, checked against one process: in-process core sets and mpirun -np 2 and 3
# (oversubscribed, one thread each) with several plans; mpirun without a plan; a plan for another
# job or model refused; a rank killed or frozen ends the job with a message naming it.
set -uo pipefail
parnet=$1 src=$2 models=$3
source "$src/tests/cli/cli_expect.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export OMP_WAIT_POLICY=PASSIVE
mpi=(mpirun --oversubscribe --bind-to none)
m=$models/cifar_fused.onnx

/usr/bin/python3 -c "import numpy as np; np.save('$tmp/x.npy', np.random.RandomState(1).randn(3, 3, 32, 32).astype(np.float32))"
expect "single-process reference" 0 "wrote FP32\[3,10\]" -- \
  "$parnet" run -m "$m" --input "$tmp/x.npy" --output "$tmp/ref.npy" --threads 1

same_as_reference() {  # within 1e-5 of the largest logit
  /usr/bin/python3 -c "
import numpy as np, sys
a = np.load('$tmp/ref.npy'); b = np.load(sys.argv[1])
err = np.abs(a - b).max() / np.abs(a).max()
print('max difference / largest logit = %.3g' % err)
sys.exit(0 if a.shape == b.shape and err <= 1e-5 else 1)" "$1"
}

# Clusters that lead to different plans: identical cores, a slow second core, a third device.
cluster() {  # name, then one "name core gflops" per device; links of 100 Gbit/s
  local file=$tmp/$1.pbtxt
  shift
  : >"$file"
  for dev in "$@"; do
    set -- $dev
    echo "devices { name: \"$1\" kind: CPU cores: $2 gflops: $3 memory_gbps: 10 }" >>"$file"
  done
  echo 'default_link { bandwidth_gbit_s: 100 latency_us: 5 }' >>"$file"
}
cluster two "c0 0 20" "c1 1 20"
cluster uneven "c0 0 20" "c1 1 8"
cluster three "c0 0 20" "c1 1 20" "c2 0 20"
for c in two uneven three; do
  expect "partition $c" 0 "predicted latency" -- \
    "$parnet" partition -m "$m" -c "$tmp/$c.pbtxt" --size 32 --batch 3 --no-merge \
      --out "$tmp/$c.plan"
  expect "$c plan uses several devices" 0 "" -- test "$(grep -B1 -A0 'runs {' "$tmp/$c.plan" | grep -c 'device:')" -ge 2
  expect "in-process $c" 0 "wrote FP32\[3,10\]" -- \
    "$parnet" run -m "$m" --plan "$tmp/$c.plan" --input "$tmp/x.npy" --output "$tmp/in_$c.npy"
  expect "in-process $c equals one process" 0 "largest logit" -- same_as_reference "$tmp/in_$c.npy"
done
for c in two uneven; do
  expect "mpirun -np 2 $c" 0 "wrote FP32\[3,10\]" -- timeout 120 "${mpi[@]}" -np 2 \
    "$parnet" run -m "$m" --plan "$tmp/$c.plan" --input "$tmp/x.npy" --output "$tmp/mpi_$c.npy"
  expect "mpirun $c equals one process" 0 "largest logit" -- same_as_reference "$tmp/mpi_$c.npy"
done
expect "mpirun -np 3" 0 "wrote FP32\[3,10\]" -- timeout 120 "${mpi[@]}" -np 3 \
  "$parnet" run -m "$m" --plan "$tmp/three.plan" --input "$tmp/x.npy" --output "$tmp/mpi_3.npy"
expect "mpirun -np 3 equals one process" 0 "largest logit" -- same_as_reference "$tmp/mpi_3.npy"
expect "mpirun without a plan partitions for the job" 0 "plan for this job \(3 ranks\)" -- \
  timeout 120 "${mpi[@]}" -np 3 "$parnet" run -m "$m" --input "$tmp/x.npy" --output "$tmp/job.npy"
expect "the job's own plan equals one process" 0 "largest logit" -- same_as_reference "$tmp/job.npy"
# Another batch size than the plan was made for: the stages recompile for it.
/usr/bin/python3 -c "import numpy as np; np.save('$tmp/x5.npy', np.random.RandomState(2).randn(5, 3, 32, 32).astype(np.float32))"
expect "another batch size" 0 "wrote FP32\[5,10\]" -- timeout 120 "${mpi[@]}" -np 2 \
  "$parnet" run -m "$m" --plan "$tmp/two.plan" --input "$tmp/x5.npy" --output "$tmp/b5.npy"
expect "bench against the prediction" 0 "latency: predicted [0-9.]+ ms, measured" -- \
  timeout 120 "${mpi[@]}" -np 2 "$parnet" bench -m "$m" --plan "$tmp/two.plan" --batch 3 \
    --seconds 0.5 --min-iters 5 --warmup 1 --svg "$tmp/measured.svg"
expect "measured gantt" 0 "</svg>" -- cat "$tmp/measured.svg"

# Core sets of one host may also run as one device with all the cores: the roofline (which
# assumes perfect scaling) prefers it, and the plan then runs in-process on both cores.
expect "all cores as one device" 0 "all 2 cores on every stage: .* -> all cores" -- \
  "$parnet" partition -m "$m" -c "$tmp/two.pbtxt" --size 32 --batch 3 --out "$tmp/merged.plan"
expect "merged plan runs" 0 "wrote FP32\[3,10\]" -- \
  "$parnet" run -m "$m" --plan "$tmp/merged.plan" --input "$tmp/x.npy" --output "$tmp/merged.npy"
expect "merged plan equals one process" 0 "largest logit" -- same_as_reference "$tmp/merged.npy"

# Many requests through one runner (receive buffers are reused across them), the last one of
# another batch size: the shipped model's test set under mpirun keeps its 92.81%.
fm=$src/deploy/models/parnet-fmnist/1/model.onnx
expect "partition the shipped model" 0 "predicted latency" -- "$parnet" partition -m "$fm" \
  -c "$tmp/two.pbtxt" --batch 256 --no-merge --out "$tmp/fm.plan"
expect "mpirun eval of 10,000 images" 0 "top-1 accuracy: 92.81%" -- timeout 300 "${mpi[@]}" -np 2 \
  "$parnet" eval -m "$fm" --plan "$tmp/fm.plan"

# Refused: a plan for another job size, or for another model.
expect "plan for another job" 1 "the plan has 2 devices but the job has 3 ranks" -- \
  timeout 60 "${mpi[@]}" -np 3 "$parnet" run -m "$m" --plan "$tmp/two.plan" --input "$tmp/x.npy"
expect "plan for another model" 1 "made for another model" -- \
  "$parnet" run -m "$models/m_fused.onnx" --plan "$tmp/two.plan" --input "$tmp/x.npy"

# A rank killed, or frozen, while requests run: the job ends, naming it.
rank_pid() {  # the pid of rank $2 among the children of mpirun $1
  local p
  for p in $(ps -o pid= --ppid "$1"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"
      return
    fi
  done
}
fault() {  # signal, then what the output must say
  local signal=$1 regex=$2 name="rank 1 gets SIG$1"
  "${mpi[@]}" -np 2 "$parnet" bench -m "$m" --plan "$tmp/two.plan" --batch 3 --seconds 600 \
    --timeout 3 >"$tmp/fault.log" 2>&1 &
  local job=$! pid="" start=$SECONDS
  while [ -z "$pid" ] && [ $((SECONDS - start)) -lt 30 ]; do
    sleep 1
    pid=$(rank_pid "$job" 1)
  done
  sleep 2
  kill -"$signal" "$pid" 2>/dev/null
  local waited=0
  while kill -0 "$job" 2>/dev/null && [ $waited -lt 60 ]; do sleep 1; waited=$((waited + 1)); done
  if kill -0 "$job" 2>/dev/null; then
    kill -9 "$job" "$pid" 2>/dev/null
    echo "FAIL $name: the job still runs after 60 s"
    failed=$((failed + 1))
    return
  fi
  wait "$job"
  local rc=$?
  kill -9 "$pid" 2>/dev/null
  expect "$name ends the job in ${waited} s (exit $rc)" 0 "$regex" -- \
    bash -c "[ $rc -ne 0 ] && cat '$tmp/fault.log'"
}
fault KILL "rank 1"
fault STOP "waited 3 s for .* from device 'c1' \(rank 1\)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
