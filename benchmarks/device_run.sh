#!/usr/bin/env bash
# The GPU figures the train and eval benchmarks still owe, as one prepared run for a lent GPU machine (which has
# torch, transformers, peft and accelerate, but no Ray or vLLM: neither benchmark needs them). Sized to stay under a
# 10-minute command limit: each benchmark gets its own timeout, and the JSON of whichever finished comes back.
#
#     OUT=/some/folder bash benchmarks/device_run.sh     # train.json, eval.json (+ .log) and gpu.txt land in $OUT
#
# Settings: train: both reference shapes (layers: all that fit, see --layers auto), 4 timed steps of 32 examples
# after 1 warm-up, core and plain loop side by side; eval: both shapes, 96 prompts, 256 new tokens, one timed repeat,
# the plain loop at batch 32 against the backend at 128 rows under a 131072-token budget.
set -u
OUT=${OUT:-/tmp/distill-ray-device}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)" \
    >> "$OUT/gpu.txt" 2>&1
timeout "${TRAIN_TIMEOUT_S:-300}" python benchmarks/train_throughput.py --steps 4 --warmup 1 --batch 32 \
    > "$OUT/train.json" 2> "$OUT/train.log"
echo "train exit $?" >> "$OUT/gpu.txt"
timeout "${EVAL_TIMEOUT_S:-240}" python benchmarks/eval_throughput.py --gpu --repeats 1 --prompts 96 \
    > "$OUT/eval.json" 2> "$OUT/eval.log"
echo "eval exit $?" >> "$OUT/gpu.txt"
tail -n 1 "$OUT/train.json" "$OUT/eval.json"
