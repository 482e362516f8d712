#!/usr/bin/env bash
# One prepared GPU session (issue 9): both models × both precisions, JAX vs the PyTorch reference, 256 px,
# batch 8 (the study's setting), alternated iterations, then the gather kernels. Results: $OUT/*.json.
# Runs under the device image's python3 (jax + torch preinstalled); no data pipeline, no downloads.
# Ordered by what finished compiling before: DaGAN compiled in 26.5 s on an H200 with autotuning off, StarGAN v2 did
# not within 130 s, so DaGAN runs first and StarGAN v2 gets the longer slot. Every run prints progress.
# A device call runs at most 600 s and a session has 900 s in all (start-up included), so the parts can be run as
# two calls:  bash benchmarks/gpu_run.sh dagan kernels   then   bash benchmarks/gpu_run.sh stargan_v2
# (no argument: all three parts, ≈ 11 min at the limits below).
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_FLAGS=--xla_gpu_autotune_level=0
OUT=${OUT:-/tmp/bench_out}; mkdir -p "$OUT"
stamp() { date -u +%H:%M:%S; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices()); print('torch', torch.__version__, torch.cuda.get_device_name(0))"
run() {  # model precision seconds
  echo "$(stamp) $1 $2 (limit $3 s)"
  timeout "$3" python3 -m launch.benchmark --model "$1" --config paper --precision "$2" \
    --repeats "${REPEATS:-5}" --warmup 2 --flops "$(cat benchmarks/flops_$1.txt 2>/dev/null || echo 0)" \
    --out "$OUT/bench_$1_$2.json" 2>&1 | grep -v -i warn | tail -n 12
  echo "$(stamp) exit $1 $2: ${PIPESTATUS[0]}"
}
PARTS=${*:-dagan kernels stargan_v2}
for part in $PARTS; do
  case "$part" in
    dagan) run dagan fp32 "${DAGAN_S:-130}"; run dagan bf16 "${DAGAN_S:-130}" ;;
    stargan_v2) run stargan_v2 fp32 "${STARGAN_S:-210}"; run stargan_v2 bf16 "${STARGAN_S:-210}" ;;
    kernels) echo "$(stamp) kernels"
      timeout 60 python3 -m benchmarks.kernels_benchmark --repeats 10 --out "$OUT/kernels_fp32.json" 2>&1 \
        | grep -v -i warn | tail -n 12 ;;
    *) echo "unknown part $part (dagan | stargan_v2 | kernels)"; exit 2 ;;
  esac
done
echo "$(stamp) done"
