#!/usr/bin/env bash
# Issue 7's experiment on this machine: ParNet-M (fused, SiLU, 224x224) at batch 1 and 8, run as
#   one process x 2 threads | 2 MPI ranks x 1 thread | 2 in-process core sets | the partitioner's
#   own choice,
# each measured (parnet bench, medians) beside the prediction made from a profile taken at batch 1
# only (batch 8 is predicted, never profiled). Writes $OUT/results.md and the Gantt charts.
# Usage: scripts/distributed_experiment.sh [build dir] [out dir] [seconds per case]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} out=${2:-out/distributed} seconds=${3:-5}
parnet=$build/runtime/cli/parnet
cluster=deploy/clusters/this-machine-2-cores.pbtxt
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
m=$out/m.onnx
[ -f "$m" ] || /usr/bin/python3 scripts/parnet_reference.py export --variant M --act silu --fused \
  --weights random --seed 0 --out "$m"
"$parnet" profile -m "$m" --batch 1 --threads 1,2 --out "$out/profile.pbtxt" | tee "$out/profile.log"

p50() { awk -v b="$1" '$1 == b && $2 ~ /^[0-9.]+$/ { print $2; exit }'; }
predicted_of() { sed -n 's/^predicted latency \([0-9.]*\) ms.*/\1/p'; }
rows=()
for batch in 1 8; do
  "$parnet" partition -m "$m" -c "$cluster" --profile "$out/profile.pbtxt" --batch "$batch" \
    --no-merge --out "$out/coresets_b$batch.pbtxt" >"$out/partition_coresets_b$batch.log"
  "$parnet" partition -m "$m" -c "$cluster" --profile "$out/profile.pbtxt" --batch "$batch" \
    --out "$out/choice_b$batch.pbtxt" >"$out/partition_choice_b$batch.log"
  pred_sets=$(predicted_of <"$out/partition_coresets_b$batch.log")
  pred_all=$(sed -n 's/^all 2 cores on every stage: \([0-9.]*\) ms.*/\1/p' \
    "$out/partition_choice_b$batch.log")
  choice=$(sed -n 's/.* -> \(.*\)$/\1/p' "$out/partition_choice_b$batch.log")
  common=(--batch "$batch" --seconds "$seconds" --min-iters 5 --warmup 2)

  meas_one=$("$parnet" bench -m "$m" --threads 2 "${common[@]}" | tee "$out/one_b$batch.log" | p50 "$batch")
  OMP_NUM_THREADS=1 mpirun -np 2 "$parnet" bench -m "$m" --plan "$out/coresets_b$batch.pbtxt" \
    "${common[@]}" --svg "$out/mpi_b$batch.svg" >"$out/mpi_b$batch.log"
  meas_mpi=$(p50 "$batch" <"$out/mpi_b$batch.log")
  "$parnet" bench -m "$m" --plan "$out/coresets_b$batch.pbtxt" "${common[@]}" \
    --svg "$out/threads_b$batch.svg" >"$out/threads_b$batch.log"
  meas_sets=$(p50 "$batch" <"$out/threads_b$batch.log")
  "$parnet" bench -m "$m" --plan "$out/choice_b$batch.pbtxt" "${common[@]}" \
    --svg "$out/choice_b$batch.svg" >"$out/choice_b$batch.log"
  meas_choice=$(p50 "$batch" <"$out/choice_b$batch.log")
  share_mpi=$(sed -n 's/.*transfers added .* (\([0-9.]*\)% of it).*/\1/p' "$out/mpi_b$batch.log")
  share_sets=$(sed -n 's/.*transfers added .* (\([0-9.]*\)% of it).*/\1/p' "$out/threads_b$batch.log")
  rows+=("$batch|1 process x 2 threads|$pred_all|$meas_one|-"
         "$batch|2 MPI ranks x 1 thread|$pred_sets|$meas_mpi|$share_mpi"
         "$batch|2 in-process core sets|$pred_sets|$meas_sets|$share_sets"
         "$batch|partitioner's choice ($choice)|$(predicted_of <"$out/partition_choice_b$batch.log")|$meas_choice|-")
done

{
  echo "ParNet-M fused SiLU 224x224, profile at batch 1 only ($(date -u +%F), $(nproc) cores)"
  echo
  echo "| batch | configuration | predicted ms | measured p50 ms | error | vs fastest | transfer share |"
  echo "|---|---|---|---|---|---|---|"
  for batch in 1 8; do
    best=$(printf '%s\n' "${rows[@]}" | awk -F'|' -v b="$batch" '$1 == b { print $4 }' | sort -g | head -1)
    printf '%s\n' "${rows[@]}" | awk -F'|' -v b="$batch" -v best="$best" '$1 == b {
      err = ($3 > 0) ? sprintf("%+.1f%%", 100 * ($4 / $3 - 1)) : "-"
      share = ($5 == "-" || $5 == "") ? "-" : $5 "%"
      printf "| %s | %s | %s | %s | %s | %.3fx |  %s |\n", $1, $2, $3, $4, err, $4 / best, share }'
  done
} | tee "$out/results.md"
