#!/usr/bin/env bash
# Every GPU figure of docs/benchmarks.md in one call (< 5 min on one GPU): embed img/s (ViT-B-32,
# 224 px, fp32/bf16), training step samples/s at the paper's size (batch 8/32, fp32/bf16),
# loader vs step throughput, shared-sweep speed-up; one Markdown table on stdout.
#
#   benchmarks/gpu.sh                 # on the GPU machine, from the repository root
#   benchmarks/gpu.sh --dry-run       # toy sizes on the CPU: checks the script (the test suite runs it)
#   PYTHON=.venv/bin/python benchmarks/gpu.sh --device cuda:1 --dir /tmp/hcdg-gpu
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec timeout 300 "$PYTHON" benchmarks/gpu_figures.py "$@"
