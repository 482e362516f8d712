#!/usr/bin/env bash
# One prepared GPU session (issue 9): both models × both precisions, JAX vs the PyTorch reference, 256 px,
# batch 8 (the study's setting), alternated iterations. Results: $OUT/bench_<model>_<precision>.json.
# Runs under the device image's python3 (jax + torch preinstalled); no data pipeline, no downloads.
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_FLAGS=--xla_gpu_autotune_level=0
OUT=${OUT:-/tmp/bench_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices()); print('torch', torch.__version__, torch.cuda.get_device_name(0))"
for m in stargan_v2 dagan; do
  for p in fp32 bf16; do
    timeout "${PER_RUN_S:-280}" python3 -m launch.benchmark --model "$m" --config paper --precision "$p" \
      --repeats "${REPEATS:-5}" --warmup 2 --flops "$(cat benchmarks/flops_${m}.txt 2>/dev/null || echo 0)" --out "$OUT/bench_${m}_${p}.json" 2>&1 | grep -v -i warn | tail -n 8
    echo "exit $m $p: ${PIPESTATUS[0]}"
  done
done
