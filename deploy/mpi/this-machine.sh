#!/usr/bin/env bash
# The shipped model's test set split over this machine's two cores as two MPI ranks: a plan is
# made for the job (each rank measures its core, rank 0 partitions) and used at once.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
model=deploy/models/parnet-fmnist/1/model.onnx
/usr/bin/python3 -c "import numpy as np; np.save('/tmp/parnet-batch.npy', np.random.RandomState(0).rand(64, 1, 32, 32).astype(np.float32))"
mpirun -np 2 build/runtime/cli/parnet run --model "$model" --input /tmp/parnet-batch.npy \
  --output /tmp/parnet-logits.npy
