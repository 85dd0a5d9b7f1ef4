#!/usr/bin/env bash
# The suite's GPU checks in one call (a machine with CUDA and PyTorch; the project installed, or its wheels on
# PYTHONPATH): the CUDA cases of the sparse-compute tests, then the learner benchmark on the GPU. Writes its logs to
# ${OUT:-gpu_check} as it goes.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))" \
    2>&1 | tee -a "$out/device.txt"
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_sparse_compute.py -k cuda 2>&1 | tee "$out/pytest.txt"
timeout 200 python3 benchmarks/sparse_training.py --device cuda --threads 4 --only learner,atari 2>&1 \
    | grep -v "sparse compute at" | tee "$out/sparse_training_cuda.txt"
