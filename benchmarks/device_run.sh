#!/usr/bin/env bash
# The GPU figures the train and eval benchmarks still owe, as one prepared run for a lent GPU machine (which has
# torch, transformers, peft and accelerate, but no Ray or vLLM: neither benchmark needs them; no DeepSpeed either,
# which train_memory.py's single-process path does not need). Sized to stay under a
# 10-minute command limit: each benchmark gets its own timeout, and the JSON of whichever finished comes back.
#
#     OUT=/some/folder bash benchmarks/device_run.sh     # train.json, eval.json (+ .log) and gpu.txt land in $OUT
#
# Settings: train: both reference shapes (layers: all that fit, see --layers auto) at seed.yaml's settings (steps of
# 50 examples, max_length 4096, rows of at most 16 examples / 16384 tokens, chunked loss, expert LoRA on the MoE),
# activation checkpointing on for both paths (the seed's setting), 3 timed steps after 1 warm-up, the core and the
# length-grouped plain loop side by side; then the memory estimate against torch.cuda's measured peak (tiny Llama,
# 8 rows of 4096), and the liger-kernel equality test where liger-kernel and pytest are installed; eval: both shapes,
# 96 prompts, 256 new tokens, one timed repeat, the plain loop at batch 32 against the backend at 128 rows under a
# 131072-token budget; host memory: the ZeRO-3 load of a small MoE by 2 gloo workers against train.host_memory's
# plan (benchmarks/train_load_memory.py; CPU processes, so it needs DeepSpeed but no GPU: skipped where DeepSpeed is
# not installed), recording the per-rank load peak on that machine's host.
set -u
OUT=${OUT:-/tmp/distill-ray-device}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)" \
    >> "$OUT/gpu.txt" 2>&1
timeout "${TRAIN_TIMEOUT_S:-300}" python benchmarks/train_throughput.py --steps 3 --warmup 1 --checkpointing on \
    > "$OUT/train.json" 2> "$OUT/train.log"
echo "train exit $?" >> "$OUT/gpu.txt"
timeout "${MEMORY_TIMEOUT_S:-40}" python benchmarks/train_memory.py --device cuda --student builtin:tiny-llama \
    --rows 8 --length 4096 > "$OUT/train_memory.json" 2> "$OUT/train_memory.log"
echo "train_memory exit $?" >> "$OUT/gpu.txt"
timeout "${LIGER_TIMEOUT_S:-40}" python -m pytest -q tests/train/test_loss.py -k liger > "$OUT/liger.log" 2>&1
echo "liger test exit $? (5: not collected, e.g. no pytest)" >> "$OUT/gpu.txt"
timeout "${EVAL_TIMEOUT_S:-200}" python benchmarks/eval_throughput.py --gpu --repeats 1 --prompts 96 \
    > "$OUT/eval.json" 2> "$OUT/eval.log"
echo "eval exit $?" >> "$OUT/gpu.txt"
if python -c "import deepspeed" > /dev/null 2>&1; then
    timeout "${LOAD_MEMORY_TIMEOUT_S:-120}" python benchmarks/train_load_memory.py --compare-plain \
        > "$OUT/train_load_memory.json" 2> "$OUT/train_load_memory.log"
    echo "train_load_memory exit $?" >> "$OUT/gpu.txt"
else
    echo "train_load_memory skipped: no deepspeed" >> "$OUT/gpu.txt"
fi
tail -n 1 "$OUT/train.json" "$OUT/train_memory.json" "$OUT/eval.json" "$OUT/train_load_memory.json" 2> /dev/null
