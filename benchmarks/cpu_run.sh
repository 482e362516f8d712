#!/usr/bin/env bash
# The CPU figures of BENCHMARKS.md (issues 9 and 16), run on an otherwise idle machine, one measurement at a time.
# Results: $OUT/*.json (+ the precision check's PNG/Markdown). About 35 minutes on 2 cores.
set -u
OUT=${OUT:-runs/bench_cpu}; mkdir -p "$OUT"
PY=${PYTHON:-python}
stamp() { date -u +%H:%M:%S; }
# 1. JAX vs the PyTorch reference, tiny configs, both precisions (alternated iterations, same process).
for m in stargan_v2 dagan; do
  for p in fp32 bf16; do
    echo "$(stamp) benchmark $m $p"
    $PY -m launch.benchmark --model "$m" --config tiny --precision "$p" --repeats 10 --warmup 2 \
      --out "$OUT/bench_${m}_${p}.json" 2>&1 | grep -E "repeat 10|speedup|compile" | tail -3
  done
  # 2. Donation before/after (JAX only).
  echo "$(stamp) benchmark $m fp32 --nodonate"
  $PY -m launch.benchmark --model "$m" --config tiny --skip_torch --nodonate --repeats 10 --warmup 2 \
    --out "$OUT/bench_${m}_fp32_nodonate.json" 2>&1 | tail -1
done
# 3. Device prefetch before/after: real training loop on the embedded sample data.
for p in 0 2; do
  for m in stargan_v2 dagan; do
    echo "$(stamp) train $m prefetch=$p"
    rm -rf "$OUT/train_${m}_prefetch$p"
    $PY -m launch.train --config "configs/$m.py:tiny" --workdir "$OUT/train_${m}_prefetch$p" --config.total_steps=60 \
      --config.log_every=20 --config.checkpoint_every=1000 --config.sample_every=1000 --config.prefetch=$p \
      > "$OUT/train_${m}_prefetch$p.log" 2>&1
    cp "$OUT/train_${m}_prefetch$p/summary.json" "$OUT/train_${m}_prefetch$p.json"
  done
done
# 4. bf16 vs float32 losses over a short run.
for m in stargan_v2 dagan; do
  echo "$(stamp) precision check $m"
  $PY -m benchmarks.precision_check --model "$m" --steps 20 --out "$OUT/precision" 2>&1 | tail -1
done
# 5. DaGAN reenactment per frame (issue 16): timed, then op by op.
echo "$(stamp) inference benchmark vox256"
$PY -m benchmarks.inference_benchmark --config vox256 --repeats 3 --stargan none --out "$OUT/inference_vox256.json" \
  2>&1 | tail -1
echo "$(stamp) reenactment profile vox256"
$PY -m benchmarks.inference_benchmark --profile --config vox256 --batches 1,4 --repeats 3 \
  --out "$OUT/reenact_profile_vox256.json" 2>&1 | tail -1
echo "$(stamp) done"
