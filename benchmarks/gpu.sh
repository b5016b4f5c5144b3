#!/usr/bin/env bash
# Every GPU figure of docs/benchmarks.md in one call (< 8 min on one GPU; a 480 s limit): embed
# img/s (ViT-B-32, 224 px, fp32/bf16) and the whole `hcdg embed` on synthetic FreiHAND images;
# training-step samples/s, peak memory and compile time at the paper's size, batch 32 and 64, for
# every execution row (fp32, bf16, fp16 + scaler, channels-last, compiled, bf16 + compiled);
# loader vs step throughput (--augment-on workers|device); 2-process DDP efficiency (2 GPUs);
# shared-sweep speed-up. One Markdown table on stdout, each row printed as soon as measured.
#
#   benchmarks/gpu.sh                 # on the GPU machine, from the repository root
#   benchmarks/gpu.sh --dry-run       # toy sizes on the CPU: checks the script (the test suite runs it)
#   PYTHON=.venv/bin/python benchmarks/gpu.sh --device cuda:1 --dir /tmp/hcdg-gpu
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec timeout 480 "$PYTHON" benchmarks/gpu_figures.py "$@"
